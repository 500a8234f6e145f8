"""The company sums its departments up into summary.json.

argv: COMPANY. META_UPSTREAM holds one subdir per department (department.json).
"""

import json
import os
import sys
from pathlib import Path

departments = [
    json.loads(p.read_text())
    for p in sorted(Path(os.environ["META_UPSTREAM"]).glob("*/department.json"))
]
summary = {
    "company": sys.argv[1],
    "departments": len(departments),
    "members": sum(d["members"] for d in departments),
    "budget": sum(d["budget"] for d in departments),
    "invalid": sorted(path for d in departments for path in d["invalid"]),
}
Path(os.environ["META_OUTPUT"], "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
