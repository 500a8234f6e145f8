"""Reading the files a user gives (flows, inputs, descriptions), with faults that name them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from meta.errors import Fault, UserError
from meta.steps.validate_node import JsonYamlLoader, UniqueKeysLoader


def display_path(path: Path) -> str:
    """A path as a person would type it: relative to the working directory when it is below it."""
    try:
        return (
            os.path.relpath(path)
            if path.is_absolute() and Path.cwd() in path.parents
            else str(path)
        )
    except ValueError:
        return str(path)


def read_text(
    path: Path, fault: type[UserError] = UserError, *, missing: str = "no such file"
) -> str:
    """The text of `path`; a missing or unreadable file is a `fault` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fault(Fault(display_path(path), "", missing)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fault(Fault(display_path(path), "", f"cannot read: {exc}")) from None


def parse_json(text: str, file: str, fault: type[UserError] = UserError) -> Any:
    try:
        return loads_strict_json(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise fault(Fault(file, "", reason)) from None
    except ValueError as exc:
        raise fault(Fault(file, "", f"invalid JSON: {exc}")) from None


def loads_strict_json(text: str) -> Any:
    """JSON as the standard has it: `NaN` and `Infinity` (which Python's json reads, and
    other readers refuse) are refused, and so is data nested too deeply to be walked."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ValueError(f"nested more than {sys.getrecursionlimit()} levels deep") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def parse_yaml(text: str, file: str, fault: type[UserError] = UserError) -> Any:
    """Safe YAML only: no tags that build Python objects, no key given twice."""
    return _parse_yaml(text, file, fault, UniqueKeysLoader)


def parse_yaml_data(text: str, file: str, fault: type[UserError] = UserError) -> Any:
    """YAML data (an input, a schema): safe, no key given twice, and read as the JSON it stands
    for: keys as written, only true/false as booleans, dates as strings."""
    return _parse_yaml(text, file, fault, JsonYamlLoader)


def _parse_yaml(text: str, file: str, fault: type[UserError], loader: type[Any]) -> Any:
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise fault(Fault(file, "", f"invalid YAML: {where}{problem}")) from None
