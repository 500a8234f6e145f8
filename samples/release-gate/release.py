"""Release: the manifest in the outputs, the version in the result."""

import json
import os
import sys
from pathlib import Path

tested, docs = int(sys.argv[1]), sys.argv[2]
upstream = Path(os.environ["META_UPSTREAM"])
logs = sorted(p.name for p in (upstream / "test").rglob("*.log"))
manifest = {
    "packagesTested": tested,
    "docs": docs,
    "testLogs": logs,
    "fedBy": sorted(os.listdir(upstream)),
}
out = Path(os.environ["META_OUTPUT"], "release.json")
out.write_text(json.dumps(manifest, sort_keys=True) + "\n")
Path(os.environ["META_RESULT"]).write_text(json.dumps({"version": f"1.{tested}.0"}))
