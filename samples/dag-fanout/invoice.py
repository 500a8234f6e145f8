"""Join both branches of the dag: the order count and the fan-out's subtotal; argv TAX_PERCENT."""

import json
import os
import sys
from pathlib import Path

tax_percent = int(sys.argv[1])
upstream = Path(os.environ["META_UPSTREAM"])
count = int((upstream / "count" / "count.txt").read_text())
subtotal = json.loads((upstream / "price" / "subtotal.json").read_text())["subtotal"]
tax = subtotal * tax_percent // 100
invoice = {"orders": count, "subtotal": subtotal, "tax": tax, "total": subtotal + tax}
Path(os.environ["META_OUTPUT"], "invoice.json").write_text(json.dumps(invoice) + "\n")
print(json.dumps(invoice))
