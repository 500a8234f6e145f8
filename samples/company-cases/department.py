"""A department prices its teams' hours at its rate (team-<name> subdirs); argv NAME RATE."""

import json
import os
import sys
from pathlib import Path

name, rate = sys.argv[1], int(sys.argv[2])
teams = [json.loads(p.read_text()) for p in Path(os.environ["META_UPSTREAM"]).glob("*/team.json")]
hours = sum(t["hours"] for t in teams)
department = {
    "department": name,
    "teams": len(teams),
    "people": sum(len(t["people"]) for t in teams),
    "hours": hours,
    "cost": hours * rate,
}
Path(os.environ["META_OUTPUT"], "cost.json").write_text(json.dumps(department) + "\n")
