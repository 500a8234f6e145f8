"""Count the orders; META_INPUT is the flow's inputs ({name: absolute path | inline value})."""

import json
import os
from pathlib import Path

inputs = json.loads(Path(os.environ["META_INPUT"]).read_text())
orders = json.loads(Path(inputs["orders"]).read_text())
Path(os.environ["META_OUTPUT"], "count.txt").write_text(f"{len(orders)}\n")
