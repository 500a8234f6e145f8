"""Add up the last tally of every chunk (META_UPSTREAM/rounds/<tally.N>/tally.json)."""

import json
import os
from pathlib import Path

tallies = sorted(
    (json.loads(p.read_text()) for p in Path(os.environ["META_UPSTREAM"]).glob("*/*/tally.json")),
    key=lambda t: t["chunk"],
)
raw: dict = {}
refined: dict = {}
for tally in tallies:
    for sums, key in ((raw, "raw"), (refined, "totals")):
        for sensor, total in tally[key].items():
            sums[sensor] = sums.get(sensor, 0) + total["sum"]
result = {
    "chunks": len(tallies),
    "rounds": sorted({t["round"] for t in tallies}),
    "raw": raw,
    "refined": refined,
    "dropped": [seq for t in tallies for seq in t["dropped"]],
}
Path(os.environ["META_OUTPUT"], "totals.json").write_text(json.dumps(result, sort_keys=True) + "\n")
print(json.dumps(result, sort_keys=True))
