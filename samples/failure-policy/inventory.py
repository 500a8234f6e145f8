"""List the sites to check (independent of the probes: it runs whatever they do)."""

import json
import os
from pathlib import Path

inputs = json.loads(Path(os.environ["META_INPUT"]).read_text())
names = [site["name"] for site in json.loads(Path(inputs["sites"]).read_text())]
Path(os.environ["META_OUTPUT"], "inventory.json").write_text(json.dumps(names) + "\n")
