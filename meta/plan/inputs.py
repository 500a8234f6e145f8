"""Reading input data: JSON or YAML documents, JSON-lines streams, and places inside them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meta.errors import Fault, InputFault, lookup
from meta.flow.files import (
    display_path,
    loads_strict_json,
    parse_json,
    parse_yaml_data,
    read_text,
)
from meta.steps.yamldata import is_yaml

JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})


def is_json_lines(path: Path) -> bool:
    return path.suffix.lower() in JSON_LINES_SUFFIXES


def read_json(path: Path) -> Any:
    """The JSON document in `path` (YAML: the JSON it stands for, for a `.yaml`/`.yml` file
    or one that does not start as JSON does, such as a `CITATION.cff`);
    a missing file or one that does not parse is an `InputFault` naming the line."""
    text = read_text(path, InputFault, missing="input file not found")
    if is_yaml(path, text):
        return parse_yaml_data(text, display_path(path), InputFault)
    return parse_json(text, display_path(path), InputFault)


def iter_json_lines(path: Path) -> Iterator[Any]:
    """The records of a JSON-lines file, read lazily; blank lines are skipped."""
    file = display_path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputFault(Fault(file, "", "input file not found")) from None
    except OSError as exc:
        raise InputFault(Fault(file, "", f"cannot read input: {exc}")) from None
    with handle:
        index = 0
        for number, raw in enumerate(handle, start=1):
            try:
                # A byte order mark may start the file (what Windows tools write).
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputFault(
                    Fault(file, f"/{index}", f"line {number} is not UTF-8 text (byte {exc.start})")
                ) from None
            if not line.strip():
                continue
            try:
                record = loads_strict_json(line)
            except json.JSONDecodeError as exc:
                raise InputFault(
                    Fault(file, f"/{index}", f"invalid JSON on line {number}: {exc.msg}")
                ) from None
            except ValueError as exc:
                raise InputFault(Fault(file, f"/{index}", f"line {number}: {exc}")) from None
            yield record
            index += 1


def resolve(document: Any, where: str, file: str, prefix: str = "") -> Any:
    """The value at JSON pointer `where` inside `document`, or an `InputFault` naming it
    (`prefix` is the pointer of `document` itself inside `file`, for an inline value)."""
    try:
        return lookup(document, where)
    except LookupError as missing:
        raise InputFault(
            Fault(file, prefix + str(missing.args[0]), f"nothing at {where} in the input data")
        ) from None
