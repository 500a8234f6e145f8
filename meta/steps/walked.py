"""Which fields of a tree node a walk kept lenient (`over.misfits: keep`) takes children from.

The engine walks such fields and the validator step leaves their elements to the units that
walk them; any other value of a children field is plain data of its node, checked whole by the
node's own unit. Both read this one rule, so they never disagree on what was walked.
"""

from __future__ import annotations

from typing import Any


def holds_nodes(value: Any, *, named: bool) -> bool:
    """Whether a walk takes children from `value`: one object or an array of objects (a
    `children` field), an object of objects (an `entries` field, `named`)."""
    if named:
        return isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)
