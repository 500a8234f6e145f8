"""Probe one site (META_INPUT is the item): exit 1 when it is down, else write status.json."""

import json
import os
import sys
from pathlib import Path

site = json.loads(Path(os.environ["META_INPUT"]).read_text())
if not site["up"]:
    sys.stderr.write(f"probe: {site['name']} does not answer\n")
    sys.exit(1)
status = {"site": site["name"], "up": True}
Path(os.environ["META_OUTPUT"], "status.json").write_text(json.dumps(status) + "\n")
