"""The bounds of one template render, and the budget it spends: work done and values made.

A render that goes past a bound raises `TemplateTooCostly`, which its caller turns into a fault
naming the place. The budget is per thread and starts whole with every render.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

MAX_RENDERED = 1 << 20
"""The most characters (or items) a rendered value, or any value made on the way, may hold; and
the largest number a call may be given (a width, a count)."""
MAX_MADE = 16 * MAX_RENDERED
"""The most characters (or items) one render may make in all: each value is bounded on its own,
but a list of a thousand values near the bound is a gigabyte."""
MAX_INT_BITS = 1 << 13
"""The largest integer a template may make, in bits (about 2,400 decimal digits)."""
MAX_STEPS = 1_000_000
"""The work one render may do: calls, filters, lookups, operators, range items, output parts."""


class TemplateTooCostly(Exception):
    """A render went past one of the sandbox's bounds."""


class _Budget(threading.local):
    steps = 0
    made = 0


_budget = _Budget()


def start_render() -> None:
    """A render begins: its budget of work is whole again."""
    _budget.steps = 0
    _budget.made = 0


def charge(steps: int) -> None:
    _budget.steps += steps
    if _budget.steps > MAX_STEPS:
        raise TemplateTooCostly(f"the template does more than {MAX_STEPS:,} steps of work")


def charge_made(size: int) -> None:
    """A value of `size` characters or items was made (or is about to be)."""
    _budget.made += size
    if _budget.made > MAX_MADE:
        raise TemplateTooCostly(
            f"the template makes values of more than {MAX_MADE:,} characters or items in all"
        )


def refuse_size(size: int, what: str = "a value") -> None:
    """Refuse a value of `size` characters or items before it is made, when past the bound."""
    if size > MAX_RENDERED:
        raise TemplateTooCostly(f"{what} longer than {MAX_RENDERED:,} characters or items")


def bounded_text(parts: Iterable[str]) -> str:
    """The rendered parts joined, refused once they pass MAX_RENDERED characters."""
    kept: list[str] = []
    size = 0
    for part in parts:
        size += len(part)
        charge(1)
        if size > MAX_RENDERED:
            raise TemplateTooCostly(f"the rendered text is longer than {MAX_RENDERED:,} characters")
        kept.append(part)
    return "".join(kept)
