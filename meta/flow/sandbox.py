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
import inspect
import json
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sized,
    ValuesView,
)
from typing import Any

from jinja2 import nodes, pass_eval_context
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from meta.flow import growth
from meta.flow.budget import (
    MAX_INT_BITS,
    MAX_RENDERED,
    TemplateTooCostly,
    charge,
    charge_made,
    refuse_size,
)

_FORMATS = frozenset({"format", "format_map"})
_PASSES = "meta_loop_passes"
"""The global every `for` loop's iterable goes through, to charge each pass."""
_CONCAT = "meta_concat"
"""The global every `~` goes through, to size what it joins."""
ITERATOR_WRITTEN = "an iterator (what map, select, reject or reverse give), not a value: add | list"
_MADE = (str, bytes, list, tuple, dict, set, frozenset)
"""The values whose length is charged to the render's budget of values made."""


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every growing operator, filter and method checked and every
    step charged."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_output, **options)
        self.filters = {name: _bounded(name, f) for name, f in self.filters.items()}
        self.filters["sum"] = _bounded("sum", growth.bounded_sum)
        # The filters that make a value text make it as a written value is made (as_text).
        self.filters["string"] = _bounded("string", as_text)
        self.filters["join"] = _bounded("join", _join)
        self.globals["range"] = _range
        self.globals[_PASSES] = _passes
        self.globals[_CONCAT] = _concat
        # What a block, a macro or `{% set %}...{% endset %}` writes is joined by this.
        self.concat = _bounded_concat  # type: ignore[method-assign]

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        """The template's code, each `for` loop iterating through `_passes` and each `~`
        joining through `_concat`: Jinja compiles both to plain Python, which no other hook of
        the sandbox sees. (Here, not in `_parse`: `compile_expression` does not parse with it.)"""
        for loop in source.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name(_PASSES, "load"), [loop.iter], [], None, None)
        source = _Concatenations().visit(source)
        return super()._generate(source, name, filename, defer_init)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        charge(1)
        _check_binop(operator, left, right)
        return _made(super().call_binop(context, operator, left, right))

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
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by Jinja
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            args = growth.check_method(owner, method.__name__, args, kwargs)
        return _made(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        charge(1)
        if isinstance(obj, Mapping) and not attribute.startswith("_"):
            # A key of the data wins over a method of its type: `item.items` is the item's
            # `items`, not dict.items (Jinja, like Python, looks for the attribute first).
            try:
                return obj[attribute]
            except LookupError:
                pass
        if isinstance(obj, str) and attribute in _FORMATS:
            # Checked when the method is found too: Jinja wraps what it gives.
            growth.check_format(obj, ())
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        charge(1)
        return super().getitem(obj, argument)


class _Concatenations(NodeTransformer):
    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        parts = [self.visit(part) for part in node.nodes]
        return nodes.Call(nodes.Name(_CONCAT, "load"), parts, [], None, None)


def _passes(iterable: Iterable[Any]) -> Iterable[Any]:
    for item in iterable:
        charge(1)
        yield item


def _range(*args: int) -> range:
    numbers = safe_range(*args)
    charge(len(numbers))
    return numbers


def _concat(*values: Any) -> str:
    refuse_size(sum(growth.text_size(value) for value in values), "a concatenation")
    return "".join(map(as_text, values))


@pass_eval_context
def _join(eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    """Jinja's `join`, each item's text as `as_text` makes it (`true`, not `True`)."""
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    return str(d).join(as_text(item) for item in value)


def _bounded_concat(parts: Iterable[str]) -> str:
    kept = list(parts)
    refuse_size(sum(map(len, kept)), "a block's text")
    return "".join(kept)


def _output(value: Any) -> Any:
    """Every value a template writes (Jinja's `finalize`), sized before it is made text: what
    a block or a macro writes is kept until it ends, not passed on part by part. A function or
    a method is refused: its text holds a memory address, different in every run."""
    if isinstance(value, str):
        size = len(value)
    elif callable(value) and not isinstance(value, Undefined):
        name = getattr(value, "__name__", type(value).__name__)
        raise TypeError(f"the template writes the function or method '{name}', not a value")
    else:
        size = growth.text_size(value)
    refuse_size(size, "a written value")
    charge_made(size)
    return value if isinstance(value, Undefined) else as_text(value)


def as_text(value: Any) -> str:
    """The text of a value in a command or a name: data (a mapping, a list, true, false, null)
    as JSON, the notation it was written in, never Python's repr (`{'a': None}`, `True`), with
    its keys in the data's own order (`tojson` sorts them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Iterator):
        # Its text holds a memory address, different in every run.
        raise TypeError(f"the template writes {ITERATOR_WRITTEN}")
    if isinstance(value, (KeysView, ValuesView, ItemsView)):
        value = list(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _made(value: Any) -> Any:
    if isinstance(value, _MADE):
        refuse_size(len(value))
        charge_made(len(value))
    return value


def _bounded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter charged one step, refused numbers past MAX_RENDERED (`center(10**9)`), and
    refused what it would make past the bound; `functools.wraps` keeps Jinja's marks
    (pass_context...) on it."""
    value = growth.value_position(name, function)
    check = growth.FILTER_CHECKS.get(name)
    signature = inspect.signature(function) if check else None

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        charge(1)
        _check_arguments(args, kwargs)
        if value is not None and value < len(args):  # Jinja passes the value by position
            refuse_size(growth.text_size(args[value]), "a text")
        if signature is not None and check is not None:
            bound = signature.bind(*args, **kwargs)
            check(bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        # What grows by a small factor only (escaping, `tojson`) is refused once made.
        return _made(function(*args, **kwargs))

    return bounded


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_RENDERED:
            raise TemplateTooCostly(
                f"a call is given a number past {MAX_RENDERED:,} (the sandbox's bound)"
            )


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
        values = right if isinstance(right, tuple) else (right,)
        growth.check_format(left, right.values() if isinstance(right, Mapping) else values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _repeats(sequence: Any, times: Any) -> bool:
    return isinstance(sequence, Sized) and _is_int(times) and len(sequence) * times > MAX_RENDERED
