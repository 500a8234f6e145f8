"""Orders may only name known customers and products. argv: DATA (the shop's data file).

Upstream: the validator's reports on customers and products (META_UPSTREAM/customer, /product).
Writes orders.json: the orders that hold, and the ones that name something unknown.
"""

import json
import os
import sys
from pathlib import Path

shop = json.loads(Path(sys.argv[1]).read_text())
upstream = Path(os.environ["META_UPSTREAM"])
checked = {name: json.loads((upstream / name / "report.json").read_text()) for name in ("customer", "product")}
customers = {c["id"] for c in shop["customers"]}
products = {p["sku"] for p in shop["products"]}
good, dangling = [], []
for i, order in enumerate(shop["orders"]):
    known = order["customer"] in customers and all(line["sku"] in products for line in order["lines"])
    (good if known else dangling).append(i)
result = {
    "orders": good,
    "dangling": [f"/orders/{i}" for i in dangling],
    "invalidUpstream": {name: report["subtree"]["invalid"] for name, report in checked.items()},
}
Path(os.environ["META_OUTPUT"], "orders.json").write_text(json.dumps(result) + "\n")
