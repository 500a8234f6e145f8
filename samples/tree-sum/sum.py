"""Add this node's value to the sums of its children (each in its own META_UPSTREAM subdir)."""

import json
import os
from pathlib import Path

node = json.loads(Path(os.environ["META_INPUT"]).read_text())
total = node.get("value", 0)
for child in sorted(Path(os.environ["META_UPSTREAM"]).iterdir()):
    total += int((child / "sum.txt").read_text())
Path(os.environ["META_OUTPUT"], "sum.txt").write_text(f"{total}\n")
print(f"{os.environ['META_UNIT_ID']}: {total}")
