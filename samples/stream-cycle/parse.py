"""Ring member 1; argv ROUND. Round 0 parses the chunk (META_INPUT, a list of records);
round 1 carries on the state the previous round's tally left."""

import json
import os
import sys
from pathlib import Path

from common import read_state, write_state

if int(sys.argv[1]) == 0:
    chunk = json.loads(Path(os.environ["META_INPUT"]).read_text())
    records = [{"sensor": r["sensor"], "value": int(r["reading"])} for r in chunk]
    write_state({"records": records})
else:
    write_state(read_state("tally"))
