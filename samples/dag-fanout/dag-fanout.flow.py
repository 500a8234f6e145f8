"""The dag-fanout sample written in Python: the same flow as dag-fanout.flow.yaml.

    meta run samples/dag-fanout/dag-fanout.flow.py --workdir runs/dag-fanout-py

`meta` runs this module and takes its `flow`; `python3 dag-fanout.flow.py` prints the YAML.
"""

from collections.abc import Sequence
from pathlib import Path

import meta.builder as mb


def python(name: str, script: str, *args: str, depends_on: Sequence[mb.Unit] = ()) -> mb.Step:
    """A step that runs one of this folder's scripts."""
    return mb.step(name, ["python3", script, *args], depends_on=depends_on)


check = python("check", "check.py")
count = python("count", "count.py")
price = mb.fanout(
    "price",
    over="orders",
    visit=python("line-{{ item.id }}", "line.py", "{{ item.qty }}", "{{ item.price }}"),
    gather=python("subtotal", "subtotal.py"),
    max_active=3,
    depends_on=[check],
)
invoice = python("invoice", "invoice.py", "{{ inputs.taxPercent }}", depends_on=[count, price])

flow = mb.flow(
    "dag-fanout",
    mb.dag("billing", check, count, price, invoice, max_active=2),
    inputs={"orders": Path("data/orders.json"), "taxPercent": 20},
    defaults=mb.defaults(retries=0, timeout_seconds=60),
)

if __name__ == "__main__":
    print(flow.to_yaml(), end="")
