"""Take this node's share of its parent's budget; the root starts from its own `budget`.

argv: NAME DEPTH (rendered from the flow's templates). Writes allocation.json to META_OUTPUT.
"""

import json
import os
import sys
import time
from pathlib import Path

name, depth = sys.argv[1], int(sys.argv[2])
node = json.loads(Path(os.environ["META_INPUT"]).read_text())
parent_file = Path(os.environ["META_UPSTREAM"], "allocate", "allocation.json")
if parent_file.exists():
    parent = json.loads(parent_file.read_text())
    path = f"{parent['path']}/{name}"
    budget = parent["budget"] * node["share"] // 100
else:
    path, budget = name, node["budget"]
time.sleep(0.2)  # long enough that the siblings of a level visibly overlap
allocation = {"path": path, "budget": budget, "depth": depth}
Path(os.environ["META_OUTPUT"], "allocation.json").write_text(json.dumps(allocation) + "\n")
print(f"{path}: {budget}")
