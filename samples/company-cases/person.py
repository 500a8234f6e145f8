"""A person reports the hours they worked (META_INPUT: the person node)."""

import json
import os
from pathlib import Path

person = json.loads(Path(os.environ["META_INPUT"]).read_text())
report = {"person": person["name"], "hours": sum(person["hours"])}
Path(os.environ["META_OUTPUT"], "hours.json").write_text(json.dumps(report) + "\n")
