"""Which packages a change touched, and whether it touched docs/: the step's result."""

import json
import os
from pathlib import Path

inputs = json.loads(Path(os.environ["META_INPUT"]).read_text())
changes = json.loads(Path(inputs["changes"]).read_text())
tops = [change["path"].split("/", 1)[0] for change in changes]
packages = sorted({top for top in tops if top != "docs"})
result = {"packages": packages, "docs": "docs" in tops, "lines": sum(c["lines"] for c in changes)}
Path(os.environ["META_RESULT"]).write_text(json.dumps(result))
Path(os.environ["META_OUTPUT"], "changes.json").write_text(json.dumps(changes, indent=1) + "\n")
