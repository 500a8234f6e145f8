"""A department prices its headcount: members x budget per head, from its teams' team.json.

argv: DEPARTMENT BUDGET_PER_HEAD. META_UPSTREAM holds one subdir per team.
"""

import json
import os
import sys
from pathlib import Path

teams = [
    json.loads(p.read_text()) for p in sorted(Path(os.environ["META_UPSTREAM"]).glob("*/team.json"))
]
members = sum(t["members"] for t in teams)
department = {
    "department": sys.argv[1],
    "teams": len(teams),
    "members": members,
    "budget": members * float(sys.argv[2]),
    "invalid": sorted(path for t in teams for path in t["invalid"]),
}
Path(os.environ["META_OUTPUT"], "department.json").write_text(json.dumps(department) + "\n")
