"""Reading the files a user gives (flows, inputs, descriptions), with faults that name them."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from meta.errors import Fault, UserError, pointer
from meta.flow.reading import read_regular
from meta.steps.yamldata import JsonYamlLoader, UniqueKeysLoader, YamlRefused, load_checked


def display_path(path: Path) -> str:
    """A path as a person would type it: relative to the working directory when it is below it."""
    try:
        return (
            os.path.relpath(path)
            if path.is_absolute() and Path.cwd() in path.parents
            else str(path)
        )
    except (ValueError, OSError):
        # Not below it, or the working directory is gone (removed while `meta` runs in it).
        return str(path)


def read_text(
    path: Path, fault: type[UserError] = UserError, *, missing: str = "no such file"
) -> str:
    """The text of `path`; a missing or unreadable file, a special one (a FIFO, a device, a
    folder) or one too large is a `fault` naming it."""
    try:
        shown = display_path(path)
    except (OSError, ValueError):
        shown = str(path)
    return read_regular(path, shown.replace("\0", "\\0"), fault, missing=missing)


def parse_json(text: str, file: str, fault: type[UserError] = UserError) -> Any:
    try:
        # A byte order mark may start the file (what Windows tools write), as in YAML.
        return loads_strict_json(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise fault(Fault(file, "", reason)) from None
    except ValueError as exc:
        raise fault(Fault(file, "", f"invalid JSON: {exc}")) from None


def loads_strict_json(text: str) -> Any:
    """JSON as the standard has it: `NaN` and `Infinity` (which Python's json reads, and
    other readers refuse) are refused, and so is data nested too deeply to be walked."""
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite, parse_int=_integer)
    except RecursionError:
        raise ValueError(f"nested more than {sys.getrecursionlimit()} levels deep") from None


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in `value` nest more than `limit` levels."""
    return nested_past(value, limit) is not None


_Placed = tuple[Any, int, "tuple[str | int, _Placed] | None"]
"""A value met on a walk, its level, and its key in its parent with the parent's entry."""


def nested_past(value: Any, limit: int) -> str | None:
    """The JSON pointer of an array or object of `value` nested more than `limit` levels deep
    (`value` itself is level 1), if any; found without recursion (a value read from a shallow
    stack may be too deep for a recursive walk)."""
    pending: list[_Placed] = [(value, 1, None)]
    while pending:
        entry = pending.pop()
        item, depth, _ = entry
        if isinstance(item, dict | list):
            if depth > limit:
                return pointer(_path(entry))
            children = item.items() if isinstance(item, dict) else enumerate(item)
            pending.extend((child, depth + 1, (key, entry)) for key, child in children)
    return None


def _path(entry: _Placed) -> list[str | int]:
    keys: list[str | int] = []
    link = entry[2]
    while link is not None:
        key, parent = link
        keys.append(key)
        link = parent[2]
    return keys[::-1]


MAX_INTEGER_DIGITS = 4300
"""Python's default limit on converting text to an integer (sys.get_int_max_str_digits)."""


def _finite(text: str) -> float:
    """A JSON number as a float; one too large for a float (`1e400`) is not read as infinity."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("a number out of range")
    return value


def _integer(text: str) -> int:
    """A JSON integer; one longer than Python converts (4,300 digits) is said so plainly."""
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer of more than {MAX_INTEGER_DIGITS:,} digits")
    return int(text)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def parse_yaml(text: str, file: str, fault: type[UserError] = UserError) -> Any:
    """Safe YAML only: no tags that build Python objects, no key given twice, only values JSON
    has, within the limits of `meta.steps.yamlnodes` (checked before any value is built): as
    `meta.steps.yamldata.load_checked` reads them for every reader, a step's included."""
    return _parse_yaml(text, file, fault, UniqueKeysLoader, text_keys=False)


def parse_yaml_data(text: str, file: str, fault: type[UserError] = UserError) -> Any:
    """YAML data (an input, a schema): safe, no key given twice, within the same limits, and
    read as the JSON it stands for: keys as written, only true/false as booleans, dates as
    strings."""
    return _parse_yaml(text, file, fault, JsonYamlLoader, text_keys=True)


def _parse_yaml(
    text: str, file: str, fault: type[UserError], loader_class: type[Any], *, text_keys: bool
) -> Any:
    try:
        return load_checked(text, loader_class, text_keys=text_keys)
    except YamlRefused as exc:
        raise fault(Fault(file, exc.where, exc.reason)) from None
