"""Read the generated flow's outputs (the fleet summary) and write result.json.

META_UPSTREAM/fleet is the `generate` unit's outputs: the outputs of the flow it generated and
ran, here the root node's visit (fleet.json).
"""

import json
import os
from pathlib import Path

fleet = json.loads(Path(os.environ["META_UPSTREAM"], "fleet", "fleet.json").read_text())
result = {
    "depots": fleet["depots"],
    "vehicles": fleet["vehicles"],
    "invalid": fleet["invalid"],
    "errors": fleet["errors"],
}
Path(os.environ["META_OUTPUT"], "result.json").write_text(json.dumps(result, indent=1) + "\n")
depots, invalid = len(fleet["depots"]), len(fleet["invalid"])
print(f"{fleet['vehicles']} vehicles in {depots} depots, {invalid} invalid")
