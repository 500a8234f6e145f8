"""The flow language's JSON Schema, and validation against it with messages a person can act on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from meta.errors import Fault, pointer


@cache
def flow_schema() -> dict[str, Any]:
    """The MetaFlow JSON Schema, as shipped in `meta/flow/schema.json`."""
    text = resources.files("meta.flow").joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(flow_schema())


def schema_faults(document: Any, file: str) -> list[Fault]:
    """Every place where `document` breaks the schema, most specific first, one fault each."""
    faults: dict[tuple[str, str], Fault] = {}
    for error in _leaf_errors(_validator().iter_errors(document)):
        for fault in _explain(error, document, file):
            faults.setdefault((fault.pointer, fault.reason), fault)
    return sorted(faults.values(), key=lambda f: f.pointer)


def _leaf_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        if error.context:
            yield from _leaf_errors(iter(error.context))
        else:
            yield error


def _explain(error: ValidationError, document: Any, file: str) -> list[Fault]:
    path = list(error.absolute_path)
    where = pointer(path)
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        allowed = sorted(properties)
        extra = [k for k in error.instance if k not in allowed]
        hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return [Fault(file, pointer([*path, key]), f"unknown field '{key}'{hint}") for key in extra]
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        return [Fault(file, where, f"missing required field '{missing}'")]
    if error.schema is False and path:
        parent = _at(document, path[:-1])
        pattern = parent.get("pattern") if isinstance(parent, dict) else None
        owner = f"a '{pattern}' section" if pattern else "this object"
        return [Fault(file, where, f"'{path[-1]}' is not a field of {owner}")]
    if kind == "enum":
        choices = ", ".join(str(choice) for choice in error.schema["enum"])  # type: ignore[index]
        return [Fault(file, where, f"{error.instance!r} is not one of: {choices}")]
    if kind == "const":
        return [Fault(file, where, f"must be {error.validator_value!r}, got {error.instance!r}")]
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [Fault(file, where, f"must be of type {expected}, got {_type_name(error.instance)}")]
    if kind in ("minimum", "exclusiveMinimum"):
        sign = ">=" if kind == "minimum" else ">"
        return [Fault(file, where, f"must be {sign} {error.validator_value}, got {error.instance}")]
    if kind == "minItems":
        return [Fault(file, where, f"needs at least {error.validator_value} item(s)")]
    if kind == "pattern":
        return [Fault(file, where, f"{error.instance!r} does not match {error.validator_value}")]
    if kind in ("minProperties", "maxProperties"):
        return [Fault(file, where, "an input is exactly one of {path: FILE} or {value: JSON}")]
    return [Fault(file, where, error.message)]


def _at(document: Any, path: list[str | int]) -> Any:
    for part in path:
        document = document[part]
    return document


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )
