"""Gather: add up every line (one META_UPSTREAM subdir per visit, named line-<id>)."""

import json
import os
from pathlib import Path

lines = [
    json.loads((d / "line.json").read_text())
    for d in sorted(Path(os.environ["META_UPSTREAM"]).iterdir())
]
subtotal = {
    "lines": {x["id"]: x["amount"] for x in lines},
    "subtotal": sum(x["amount"] for x in lines),
}
Path(os.environ["META_OUTPUT"], "subtotal.json").write_text(json.dumps(subtotal) + "\n")
