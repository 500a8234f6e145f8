"""What a filter or a string method would make, refused before it is made when too long.

The sandbox checks the operators that grow a value (`*`, `+`, `%`, `~`) where it sees them; these
are the filters and methods that build a long text or list from short arguments:
`replace('x', 'xxxxxxxxxx')` thrice makes a thousand times its input, `join` with a long separator
multiplies it by the number of items, `indent` and `wordwrap` by the number of lines, `sum` of
lists adds them up (in quadratic time, too), and `str()` of a list that holds one long string a
million times is a million of those strings. Each is sized from its arguments first.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from jinja2.filters import make_attrgetter
from jinja2.utils import pass_environment

from meta.flow.budget import MAX_RENDERED, TemplateTooCostly, charge, refuse_size

_WIDE_FORMAT = re.compile(r"\d{7,}")
"""A width or precision of a million or more in a format string."""
_NUMBER = re.compile(r"\d+")
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")
"""A replacement field whose format takes a part from the values: `{0:{1}}`."""

_PASSED = frozenset({"eval_ctx", "environment", "context", "env"})
"""The names of the first parameter of filters Jinja passes its own objects to."""
TEXT_FILTERS = frozenset(
    {
        "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower",
        "pprint", "replace", "safe", "string", "striptags", "title", "trim", "truncate",
        "upper", "urlencode", "urlize", "wordcount", "wordwrap", "tojson", "xmlattr",
    }
)  # fmt: skip
"""Filters that make a text of their value first."""
_SCALARS = frozenset({int, float, bool, type(None)})


def text_size(value: Any, limit: int = MAX_RENDERED) -> int:
    """A lower bound of len(str(value)), from a walk that stops once past `limit`."""
    if isinstance(value, str):
        return len(value)
    size = 0
    pending = [value]
    while pending and size <= limit:
        item = pending.pop()
        children: Iterable[Any]
        if isinstance(item, Mapping):
            size += 2 + 4 * len(item)
            children = itertools.chain(item.keys(), item.values())
        elif isinstance(item, Collection) and not isinstance(item, range | bytes):
            # Lists, tuples, sets, and the views of a mapping (`d.values()`), written whole.
            size += 2 + 2 * len(item)
            children = item
        else:
            size += 1
            continue
        for child in children:
            if size > limit:
                break
            kind = type(child)
            if kind is str:
                size += len(child)
            elif kind in _SCALARS:
                size += 1
            else:
                pending.append(child)
    return size


def text_of(value: Any) -> str:
    """str(value), refused before it is made when it would be too long."""
    refuse_size(text_size(value), "a text")
    return str(value)


def value_position(name: str, function: Callable[..., Any]) -> int | None:
    """Where a text filter takes the value it makes into text (after what Jinja passes it);
    None for other filters."""
    if name not in TEXT_FILTERS:
        return None
    names = list(inspect.signature(function).parameters)
    return 1 if names and names[0] in _PASSED else 0


def items(iterable: Iterable[Any]) -> list[Any]:
    """The items of an iterable, each charged as a step of work."""
    kept = []
    for item in iterable:
        charge(1)
        kept.append(item)
    return kept


def check_replace(text: str, old: Any, new: Any, count: Any = None) -> None:
    old_text, new_text = text_of(old), text_of(new)
    found = text.count(old_text) if old_text else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    refuse_size(len(text) + found * (len(new_text) - len(old_text)), "a replacement")


def joined(separator: str, values: Iterable[Any]) -> list[Any]:
    """The values to join, refused before the join when it would be too long."""
    kept: list[Any] = []
    size = 0
    for value in values:
        charge(1)
        size += text_size(value) + (len(separator) if kept else 0)
        refuse_size(size, "a join")
        kept.append(value)
    return kept


def check_format(text: str, values: Iterable[Any]) -> None:
    """A `%` or `format` of `text`: each placeholder may hold the longest of the values, or be
    as wide as the widest number the text holds (a width)."""
    if _WIDE_FORMAT.search(text):
        raise TemplateTooCostly("a format asks for a width or precision past the sandbox's bound")
    values = list(values)
    longest = max((text_size(value) for value in values), default=0)
    widest = max(map(int, _NUMBER.findall(text)), default=0)
    if "*" in text or _NESTED_FIELD.search(text):
        # A width taken from the values (`%*s`, `{:{}}`): any number among them may be one.
        widest = max([widest, *(abs(v) for v in values if type(v) is int)])
    places = text.count("%") + text.count("{")
    refuse_size(len(text) + places * max(longest, widest), "a formatted text")


def _check_indent(arguments: dict[str, Any]) -> None:
    text = text_of(arguments["s"])
    width = arguments.get("width", 4)
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    refuse_size(len(text) + (text.count("\n") + 1) * pad, "an indented text")


def _check_wordwrap(arguments: dict[str, Any]) -> None:
    text = text_of(arguments["s"])
    width = arguments.get("width", 79)
    wrap = arguments.get("wrapstring")
    wrap_size = len(text_of(wrap)) if wrap is not None else 2
    lines = len(text.split()) + len(text) // max(width if isinstance(width, int) else 1, 1) + 1
    refuse_size(len(text) + lines * wrap_size, "a wrapped text")


def _check_join(arguments: dict[str, Any]) -> None:
    values = arguments["value"]
    attribute = arguments.get("attribute")
    if attribute is not None:
        values = map(make_attrgetter(arguments["eval_ctx"].environment, attribute), values)
        arguments["attribute"] = None
    arguments["value"] = joined(text_of(arguments.get("d", "")), values)


def _check_replace(arguments: dict[str, Any]) -> None:
    check_replace(
        text_of(arguments["s"]), arguments["old"], arguments["new"], arguments.get("count")
    )


def _check_format(arguments: dict[str, Any]) -> None:
    check_format(
        text_of(arguments["value"]),
        (*arguments.get("args", ()), *arguments.get("kwargs", {}).values()),
    )


def _check_tojson(arguments: dict[str, Any]) -> None:
    indent = arguments.get("indent")
    if isinstance(indent, int) and indent > 0:
        refuse_size(indented_size(arguments["value"], indent), "an indented JSON text")


def indented_size(value: Any, indent: int, limit: int = MAX_RENDERED) -> int:
    """A lower bound of the length of `value` as JSON indented by `indent`: each item of a list
    or a mapping on a line of its own, indented by its depth; a walk that stops once past
    `limit`."""
    size = 0
    pending = [(value, 0)]
    while pending and size <= limit:
        item, depth = pending.pop()
        size += 1 + depth * indent
        if isinstance(item, Mapping):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((child, depth + 1) for child in item)
    return size


FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "replace": _check_replace,
    "join": _check_join,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "tojson": _check_tojson,
}
"""Checks of a filter's bound arguments before it runs; a check may replace an argument (the
items of a join, counted as they come)."""


@pass_environment
def bounded_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    """Jinja's `sum`, adding lists and tuples up in one go, and not past the bound."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    values = items(iterable)
    if isinstance(start, list | tuple) and all(type(v) is type(start) for v in values):
        refuse_size(len(start) + sum(len(v) for v in values), "a sum")
        return type(start)(itertools.chain(start, *values))
    return sum(values, start)


def check_method(
    text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Check a call of a string's method `name`; the arguments to call it with."""
    if name == "replace":
        check_replace(text, *args, **kwargs)
    elif name == "join" and len(args) == 1:
        return (joined(text, args[0]),)
    elif name == "expandtabs":
        size = (args or tuple(kwargs.values()) or (8,))[0]
        if isinstance(size, int):
            refuse_size(len(text) + text.count("\t") * size, "an expanded text")
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((text_size(v) for v in args[0].values()), default=1)
        refuse_size(len(text) * max(longest, 1), "a translated text")
    elif name in ("format", "format_map"):
        values = [*args, *kwargs.values()]
        if name == "format_map" and args and isinstance(args[0], Mapping):
            values = list(args[0].values())
        check_format(text, values)
    return args
