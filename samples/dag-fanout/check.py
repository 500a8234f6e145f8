"""Refuse a batch with a bad order (exit 1 stops the flow); otherwise write ok.txt."""

import json
import os
import sys
from pathlib import Path

inputs = json.loads(Path(os.environ["META_INPUT"]).read_text())
orders = json.loads(Path(inputs["orders"]).read_text())
bad = [o.get("id") for o in orders if o.get("qty", 0) <= 0 or o.get("price", 0) <= 0]
if bad:
    sys.exit(f"orders with no quantity or price: {bad}")
Path(os.environ["META_OUTPUT"], "ok.txt").write_text(f"{len(orders)} orders checked\n")
