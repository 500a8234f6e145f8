"""The company writes a summary of its departments (cost-<name> subdirs); argv NAME."""

import json
import os
import sys
from pathlib import Path

departments = sorted(
    (json.loads(p.read_text()) for p in Path(os.environ["META_UPSTREAM"]).glob("*/cost.json")),
    key=lambda d: d["department"],
)
summary = {
    "company": sys.argv[1],
    "departments": {d["department"]: d["cost"] for d in departments},
    "teams": sum(d["teams"] for d in departments),
    "people": sum(d["people"] for d in departments),
    "hours": sum(d["hours"] for d in departments),
    "cost": sum(d["cost"] for d in departments),
}
out = Path(os.environ["META_OUTPUT"])
(out / "summary.json").write_text(json.dumps(summary, sort_keys=True) + "\n")
lines = [f"{d['department']}: {d['hours']} h, cost {d['cost']}" for d in departments]
lines.append(f"{summary['company']}: {summary['hours']} h, cost {summary['cost']}")
(out / "summary.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
