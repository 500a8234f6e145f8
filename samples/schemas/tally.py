"""Tally one chunk of readings per sensor, skipping the records the validator found invalid.

argv: CHUNK_INDEX. META_INPUT: the chunk (a list of records). Upstream: check/report.json,
whose error pointers start with the record's number in the stream (/N/...).
Writes tally.json: {chunk, records, skipped, sensors: {sensor: {count, sum}}}.
"""

import json
import os
import sys
from pathlib import Path

records = json.loads(Path(os.environ["META_INPUT"]).read_text())
report = json.loads(Path(os.environ["META_UPSTREAM"], "check", "report.json").read_text())
bad = {int(error["pointer"].split("/")[1]) for error in report["errors"]}
first = int(sys.argv[1]) * 3
sensors: dict[str, dict[str, float]] = {}
for i, record in enumerate(records):
    if first + i in bad:
        continue
    tally = sensors.setdefault(record["sensor"], {"count": 0, "sum": 0.0})
    tally["count"] += 1
    tally["sum"] += record["value"]
out = {"chunk": int(sys.argv[1]), "records": len(records), "skipped": sorted(bad), "sensors": sensors}
Path(os.environ["META_OUTPUT"], "tally.json").write_text(json.dumps(out, sort_keys=True) + "\n")
