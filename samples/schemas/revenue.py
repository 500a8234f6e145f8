"""Revenue per customer over the orders that check_orders kept. argv: DATA.

Upstream: META_UPSTREAM/order/orders.json. Writes revenue.json.
"""

import json
import os
import sys
from pathlib import Path

shop = json.loads(Path(sys.argv[1]).read_text())
kept = json.loads(Path(os.environ["META_UPSTREAM"], "order", "orders.json").read_text())["orders"]
prices = {p["sku"]: p["price"] for p in shop["products"]}
revenue: dict[str, float] = {}
for i in kept:
    order = shop["orders"][i]
    total = sum(prices[line["sku"]] * line["quantity"] for line in order["lines"])
    revenue[order["customer"]] = revenue.get(order["customer"], 0) + total
out = {"revenue": dict(sorted(revenue.items())), "total": sum(revenue.values())}
Path(os.environ["META_OUTPUT"], "revenue.json").write_text(json.dumps(out, indent=2) + "\n")
