"""A team sums its people's hours (one META_UPSTREAM subdir per member: hours-<name>); argv NAME."""

import json
import os
import sys
from pathlib import Path

people = [json.loads(p.read_text()) for p in Path(os.environ["META_UPSTREAM"]).glob("*/hours.json")]
team = {
    "team": sys.argv[1],
    "people": sorted(p["person"] for p in people),
    "hours": sum(p["hours"] for p in people),
}
Path(os.environ["META_OUTPUT"], "team.json").write_text(json.dumps(team) + "\n")
