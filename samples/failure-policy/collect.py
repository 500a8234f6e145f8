"""The section's finally unit: keep how each unit of the section ended (STATES, templated from
`upstream`) and which of them left outputs (META_UPSTREAM holds those that succeeded)."""

import json
import os
from pathlib import Path

collected = {
    "states": json.loads(os.environ["STATES"]),
    "outputs": sorted(os.listdir(os.environ["META_UPSTREAM"])),
}
Path(os.environ["META_OUTPUT"], "collected.json").write_text(json.dumps(collected) + "\n")
