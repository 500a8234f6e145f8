"""The flow language's JSON Schema, and validation against it with messages a person can act on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any, cast

from jsonschema import Draft202012Validator, validators
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
    strict = validators.extend(Draft202012Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]
    return cast(Draft202012Validator, strict(flow_schema()))


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """`pattern` as JSON Schema means it: Python's `$` also matches before a final newline,
    so a name "a\n" would pass `^[a-z]+$`; here `$` at the end means the very end."""
    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


def schema_faults(document: Any, file: str) -> list[Fault]:
    """Every place where `document` breaks the schema, most specific first, one fault each."""
    faults: dict[tuple[str, str], Fault] = {}
    try:
        for error in _leaf_errors(_validator().iter_errors(document)):
            for fault in _explain(error, document, file):
                faults.setdefault((fault.pointer, fault.reason), fault)
    except RecursionError:
        return [Fault(file, "", "units are nested too deeply to be checked")]
    return sorted(faults.values(), key=lambda f: f.pointer)


def _leaf_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        if _choice(error) is not None:
            yield error
        elif error.context:
            yield from _leaf_errors(iter(_fitting_branches(error)))
        else:
            yield error


def _choice(error: ValidationError) -> list[str] | None:
    """The fields of a oneOf that asks for exactly one of some fields (`over`'s `input` or
    `result`), or None for any other error."""
    branches = error.validator_value if error.validator == "oneOf" else None
    if not isinstance(branches, list) or not all(
        isinstance(b, dict) and list(b) == ["required"] and len(b["required"]) == 1
        for b in branches
    ):
        return None
    return [b["required"][0] for b in branches]


def _fitting_branches(error: ValidationError) -> list[ValidationError]:
    """The errors of the oneOf/anyOf branches whose type fits the value; when none fits, one
    type error naming every type allowed (not one confusing error per branch)."""
    context = list(error.context or ())
    misfits = [e for e in context if e.validator == "type" and not e.relative_path]
    missed = {e.relative_schema_path[0] for e in misfits}
    fitting = [e for e in context if e.relative_schema_path[0] not in missed]
    if fitting or not misfits:
        return fitting or context
    types: list[str] = []
    for misfit in misfits:
        value: Any = misfit.validator_value
        types.extend(t for t in (value if isinstance(value, list) else [value]) if t not in types)
    misfits[0].validator_value = types
    return misfits[:1]


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
    choice = _choice(error)
    if choice is not None:
        given = isinstance(error.instance, dict) and any(n in error.instance for n in choice)
        listed = " or ".join(f"'{name}'" for name in choice)
        found = "more than one is given" if given else "none is given"
        return [Fault(file, where, f"needs exactly one of {listed}: {found}")]
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        return [Fault(file, where, f"missing required field '{missing}'")]
    if error.schema is False and path:
        return _not_taken(error, document, file)
    if kind == "enum":
        choices = ", ".join(str(choice) for choice in error.schema["enum"])  # type: ignore[index]
        return [Fault(file, where, f"{error.instance!r} is not one of: {choices}")]
    if kind == "const":
        return [Fault(file, where, f"must be {error.validator_value!r}, got {error.instance!r}")]
    if kind == "type":
        expected = error.validator_value
        kinds = [str(kind) for kind in (expected if isinstance(expected, list) else [expected])]
        hint = _quote_hint(error.instance) if "string" in kinds else ""
        expected = " or ".join(kinds)
        got = _type_name(error.instance)
        return [Fault(file, where, f"must be of type {expected}, got {got}{hint}")]
    if kind == "maximum":
        return [Fault(file, where, f"must be <= {error.validator_value}, got {error.instance}")]
    if kind in ("minimum", "exclusiveMinimum"):
        sign = ">=" if kind == "minimum" else ">"
        return [Fault(file, where, f"must be {sign} {error.validator_value}, got {error.instance}")]
    if kind == "minLength" and error.validator_value == 1:
        return [Fault(file, where, "must not be empty")]
    if kind == "minItems":
        return [Fault(file, where, f"needs at least {error.validator_value} item(s)")]
    if kind == "pattern":
        meaning = _PATTERNS.get(str(error.validator_value), f"match {error.validator_value}")
        if "propertyNames" in error.absolute_schema_path:
            where = pointer([*path, str(error.instance)])
            return [Fault(file, where, f"the name {error.instance!r} must be {meaning}")]
        return [Fault(file, where, f"{error.instance!r} must be {meaning}")]
    if kind == "uniqueItems" and isinstance(error.instance, list):
        repeated = sorted({str(x) for x in error.instance if error.instance.count(x) > 1})
        return [Fault(file, where, f"lists {', '.join(map(repr, repeated))} more than once")]
    if kind in ("minProperties", "maxProperties"):
        properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        if "secretRef" in properties:
            return [Fault(file, where, "a variable is a string, {fromEnv: NAME} or {secretRef}")]
        return [Fault(file, where, "an input is exactly one of {path: FILE} or {value: JSON}")]
    both = isinstance(error.instance, dict) and {"path", "value"} <= error.instance.keys()
    if kind == "not" and both:
        return [Fault(file, where, "an input's default is a path or a value, not both")]
    exclusive = error.validator_value if kind == "not" else None
    if isinstance(exclusive, dict) and list(exclusive) == ["required"]:
        if not isinstance(error.instance, dict):
            # `required` holds for anything but an object, so its `not` fails for it too: the
            # fault is the instance's type, which its own error names.
            return []
        fields = " or ".join(f"'{name}'" for name in exclusive["required"])
        return [Fault(file, where, f"takes {fields}, not both")]
    return [Fault(file, where, error.message)]


_PATTERNS = {
    "^[A-Za-z_][A-Za-z0-9_]*$": "letters, digits and '_', not starting with a digit",
    "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$": "lower case letters, digits and '-', starting and "
    "ending with a letter or digit, at most 63 characters",
    "^(/([^~]|~[01])*)*$": "a JSON pointer such as /items/0 (empty for the whole document)",
    "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$": "a Kubernetes Secret name (lower case letters, "
    "digits, '-' and '.')",
    "^[-._a-zA-Z0-9]{1,253}$": "a Secret key (letters, digits, '-', '_' and '.')",
}


def _not_taken(error: ValidationError, document: Any, file: str) -> list[Fault]:
    """A field a section's pattern does not take (a `false` subschema). jsonschema leaves the
    field's name out of the error's path, so find it in the object the path points at."""
    path = list(error.absolute_path)
    owner = _at(document, path)
    if owner is error.instance or not isinstance(owner, dict):
        path, owner = path[:-1], _at(document, path[:-1])
        keys = [str(error.absolute_path[-1])]
    else:
        keys = [k for k, v in owner.items() if v is error.instance and _forbidden(owner, k)]
        if not keys:
            return [Fault(file, pointer(path), error.message)]
    pattern = owner.get("pattern") if isinstance(owner, dict) else None
    kind = f"a '{pattern}' section" if pattern else "this object"
    return [Fault(file, pointer([*path, k]), f"'{k}' is not a field of {kind}") for k in keys]


def _forbidden(section: dict[str, Any], key: str) -> bool:
    for clause in flow_schema()["$defs"]["section"]["allOf"]:
        if Draft202012Validator(clause["if"]).is_valid(section):
            return clause["then"].get("properties", {}).get(key) is False
    return False


def _at(document: Any, path: list[str | int]) -> Any:
    for part in path:
        document = document[part]
    return document


def _quote_hint(value: Any) -> str:
    """For a text written bare that YAML read as another type (`true`, `3`, `~`): how to write
    the text."""
    if isinstance(value, bool):
        return " (YAML reads a bare true or false as a boolean: quote it for text)"
    if isinstance(value, int | float):
        return f" (quote it, as '{value}', for text)"
    if value is None:
        return " (YAML reads an empty value, ~ or null as null: quote it for text)"
    return ""


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )
