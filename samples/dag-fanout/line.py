"""One order line: argv QTY PRICE (rendered from the item); writes line.json."""

import json
import os
import sys
from pathlib import Path

qty, price = int(sys.argv[1]), int(sys.argv[2])
order = json.loads(Path(os.environ["META_INPUT"]).read_text())
line = {"id": order["id"], "amount": qty * price}
Path(os.environ["META_OUTPUT"], "line.json").write_text(json.dumps(line) + "\n")
