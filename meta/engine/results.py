"""A step's result: the small JSON value it may write to the file META_RESULT names.

Every driver reads it the same way, once the step has exited with code 0: a missing or empty
file is no result; more than MAX_RESULT_BYTES, text that is not JSON, or JSON nested deeper than
MAX_RESULT_DEPTH, fails the attempt with a reason that says so.
"""

from __future__ import annotations

import json
import os
from typing import Any

from meta.flow.files import nested_deeper_than
from meta.flow.yamlnodes import MAX_DEPTH

MAX_RESULT_BYTES = 64 * 1024
MAX_RESULT_DEPTH = MAX_DEPTH
"""As deep as a YAML document may nest: a result goes on into journal lines, reports and
templates, each of which nests it a little deeper, and 64 KiB of brackets would nest past the
interpreter's recursion limit."""
RESULT_FILE = "result.json"


class ResultRefused(Exception):
    """The step wrote a result that cannot be taken; the message says why."""


def read_result(path: str) -> Any:
    """The JSON value in `path`, None when there is no file or it is empty."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RESULT_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResultRefused(f"its result ($META_RESULT) cannot be read: {exc.strerror}") from None
    if len(data) > MAX_RESULT_BYTES:
        size = os.path.getsize(path)
        raise ResultRefused(
            f"its result ($META_RESULT) is {size} bytes; a result holds at most "
            f"{MAX_RESULT_BYTES} (64 KiB): write bigger data to META_OUTPUT"
        )
    if not data.strip():
        return None
    try:
        value = json.loads(data, parse_constant=_not_json)
        too_deep = nested_deeper_than(value, MAX_RESULT_DEPTH)
    except ValueError as exc:
        raise ResultRefused(f"its result ($META_RESULT) is not JSON: {exc}") from None
    except RecursionError:
        too_deep = True
    if too_deep:
        raise ResultRefused(
            f"its result ($META_RESULT) is nested too deeply: a result nests at most "
            f"{MAX_RESULT_DEPTH} levels"
        )
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def read_kept(path: str) -> Any:
    """A result the framework itself kept in a file (a micro section's, a child flow's), of
    any size; None when there is no file. A file nested too deeply to be read (the store is
    shared with steps, which may write over it) is a ValueError, as text that is not JSON is."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be read") from None


def keep(path: str, value: Any) -> None:
    """Keep a result in a file for `read_kept` (nothing for no result), written whole: a reader
    never finds half of it."""
    if value is None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(value, handle, separators=(",", ":"))
    os.replace(partial, path)
