"""Ring member 3; argv ROUND CHUNK. Totals per sensor of the records not marked outliers;
round 0's totals are kept as `raw` for the next round to refine. Writes tally.json too."""

import json
import os
import sys
from pathlib import Path

from common import read_state, write_state

round_, chunk = int(sys.argv[1]), int(sys.argv[2])
state = read_state("enrich")
totals: dict = {}
for record in state["records"]:
    if not record.get("outlier"):
        total = totals.setdefault(record["sensor"], {"sum": 0, "count": 0})
        total["sum"] += record["value"]
        total["count"] += 1
if round_ == 0:
    state["raw"] = totals
dropped = [r["seq"] for r in state["records"] if r.get("outlier")]
write_state(state)
tally = {"chunk": chunk, "round": round_, "raw": state["raw"], "totals": totals, "dropped": dropped}
Path(os.environ["META_OUTPUT"], "tally.json").write_text(json.dumps(tally, sort_keys=True) + "\n")
