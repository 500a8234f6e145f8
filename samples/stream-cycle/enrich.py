"""Ring member 2; argv ROUND CHUNK. Round 0 numbers each record across the whole stream;
round 1 marks outliers: a reading above twice its sensor's round-0 mean in this chunk."""

import sys

from common import read_state, write_state

CHUNK_SIZE = 4
round_, chunk = int(sys.argv[1]), int(sys.argv[2])
state = read_state("parse")
if round_ == 0:
    for i, record in enumerate(state["records"]):
        record["seq"] = chunk * CHUNK_SIZE + i + 1
else:
    raw = state["raw"]
    for record in state["records"]:
        total = raw[record["sensor"]]
        record["outlier"] = record["value"] * total["count"] > 2 * total["sum"]
write_state(state)
