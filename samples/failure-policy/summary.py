"""Count the sites that answered: one folder per probe under META_UPSTREAM/probe."""

import json
import os
from pathlib import Path

probes = Path(os.environ["META_UPSTREAM"], "probe")
up = sorted(json.loads((p / "status.json").read_text())["site"] for p in probes.iterdir())
Path(os.environ["META_OUTPUT"], "summary.json").write_text(json.dumps({"up": up}) + "\n")
