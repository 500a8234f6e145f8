"""The template sandbox with bounds: no template may make a huge value or work without end.

Jinja's immutable sandbox keeps templates away from Python's internals, but not from arithmetic:
`9 ** (9 ** 9)` runs for hours (Jinja even tries it while compiling, to fold the constant),
`'x' * 300000000` takes a gigabyte, and nested `range(100000)` loops run for ever. Here every
operator that can grow a value (`*`, `**`, `+`, `%`) is checked before it runs, every call,
filter, attribute and item access is charged to a per-render budget of work, so is every item
of a `range` and every pass of a `for` loop (over any value: nested loops over the data are
work too), and a rendered text may not pass `MAX_RENDERED` characters. A render that goes
past a bound raises `TemplateTooCostly`, which its caller turns into a fault naming the place.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Sized
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

MAX_RENDERED = 1 << 20
"""The most characters (or items) a rendered value, or any value made on the way, may hold; and
the largest number a call may be given (a width, a count)."""
MAX_INT_BITS = 1 << 13
"""The largest integer a template may make, in bits (about 2,400 decimal digits)."""
MAX_STEPS = 1_000_000
"""The work one render may do: calls, filters, lookups, operators, range items, output parts."""
_WIDE_FORMAT = re.compile(r"\d{7,}")
"""A width or precision of a million or more in a format string."""
_FORMATS = frozenset({"format", "format_map"})
_PASSES = "meta_loop_passes"
"""The global every `for` loop's iterable goes through, to charge each pass."""


class TemplateTooCostly(Exception):
    """A render went past one of the sandbox's bounds."""


class _Budget(threading.local):
    steps = 0


_budget = _Budget()


def start_render() -> None:
    """A render begins: its budget of work is whole again."""
    _budget.steps = 0


def charge(steps: int) -> None:
    _budget.steps += steps
    if _budget.steps > MAX_STEPS:
        raise TemplateTooCostly(f"the template does more than {MAX_STEPS:,} steps of work")


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


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every growing operator checked and every step charged."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded(f) for name, f in self.filters.items()}
        self.globals["range"] = _range
        self.globals[_PASSES] = _passes

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The parsed template, each `for` loop iterating through `_passes`: Jinja compiles a
        loop to a plain Python loop, which no other hook of the sandbox sees."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name(_PASSES, "load"), [loop.iter], [], None, None)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        charge(1)
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # Jinja's own names: a keyword argument `self` or `obj` may be passed on
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        charge(1)
        if __obj is not _range:
            _check_arguments(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        charge(1)
        if isinstance(obj, str) and attribute in _FORMATS:
            _check_format(obj)  # checked when the method is found: Jinja wraps what it gives
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        charge(1)
        return super().getitem(obj, argument)


def _passes(iterable: Iterable[Any]) -> Iterable[Any]:
    for item in iterable:
        charge(1)
        yield item


def _range(*args: int) -> range:
    numbers = safe_range(*args)
    charge(len(numbers))
    return numbers


def _bounded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter charged one step and refused numbers past MAX_RENDERED (`center(10**9)`);
    `functools.wraps` keeps Jinja's marks (pass_context...) on it."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        charge(1)
        _check_arguments(args, kwargs)
        if function.__name__ == "do_format" and args and isinstance(args[0], str):
            _check_format(args[0])
        return function(*args, **kwargs)

    return bounded


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_RENDERED:
            raise TemplateTooCostly(
                f"a call is given a number past {MAX_RENDERED:,} (the sandbox's bound)"
            )


def _check_format(text: str) -> None:
    if _WIDE_FORMAT.search(text):
        raise TemplateTooCostly("a format asks for a width or precision past the sandbox's bound")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**" and _is_int(left) and _is_int(right):
        if abs(left) > 1 and right > 0 and right * left.bit_length() > MAX_INT_BITS:
            raise TemplateTooCostly(f"a power larger than {MAX_INT_BITS:,} bits")
    elif operator == "*":
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateTooCostly(f"a product larger than {MAX_INT_BITS:,} bits")
        elif _repeats(left, right) or _repeats(right, left):
            raise TemplateTooCostly(f"a repetition longer than {MAX_RENDERED:,} items")
    elif operator == "+" and isinstance(left, Sized) and isinstance(right, Sized):
        if len(left) + len(right) > MAX_RENDERED:
            raise TemplateTooCostly(f"a value longer than {MAX_RENDERED:,} items")
    elif operator == "%" and isinstance(left, str):
        _check_format(left)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _repeats(sequence: Any, times: Any) -> bool:
    return isinstance(sequence, Sized) and _is_int(times) and len(sequence) * times > MAX_RENDERED
