"""A team counts its people and the invalid ones, from the validator's reports upstream.

argv: TEAM. META_UPSTREAM holds one subdir per member (the built-in validator's report.json).
"""

import json
import os
import sys
from pathlib import Path

reports = [
    json.loads(p.read_text()) for p in sorted(Path(os.environ["META_UPSTREAM"]).glob("*/report.json"))
]
team = {
    "team": sys.argv[1],
    "members": len(reports),
    "invalid": sorted(r["path"] for r in reports if not r["valid"]),
}
Path(os.environ["META_OUTPUT"], "team.json").write_text(json.dumps(team) + "\n")
