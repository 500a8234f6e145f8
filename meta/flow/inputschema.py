"""Checking an input's value against the JSON Schema its declaration gives.

The schema is read in the draft its `$schema` names (the newest when it names none); its
`$ref`s resolve inside it and to the drafts' own metaschemas, never over the network. A fault
names the input and points at the place inside the value that breaks the schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meta.errors import Fault, pointer

# jsonschema (and meta.steps.validate_node, which imports it) is imported by the functions that
# check a schema: it takes tens of milliseconds, and most flows declare no input schema.

MAX_FAULTS = 20
"""Faults reported per value at most: a large file breaking its schema everywhere says enough."""
MAX_MESSAGE = 300
"""jsonschema's messages quote the value: a large one is cut short."""


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a JSON Schema this project can check values with, or None."""
    if isinstance(schema, bool):
        return None
    from jsonschema.exceptions import SchemaError

    from meta.steps.validate_node import dialect_of

    dialect = dialect_of(schema)
    if dialect is None:
        return f"its $schema {schema.get('$schema')!r} names no JSON Schema draft known here"
    try:
        dialect.validator.check_schema(schema)
    except SchemaError as exc:
        where = pointer(list(exc.path))
        return f"not a valid {dialect.name} schema at {where or '/'}: {exc.message}"
    return None


def value_faults(name: str, schema: Any, value: Any, file: str, where: str) -> list[Fault]:
    """Where `value`, the value of input `name` found at `where` in `file`, breaks `schema`."""
    return _faults(name, schema, [(value, where)], file)


def record_faults(
    name: str, schema: Any, records: Iterable[Any], file: str, where: str = ""
) -> list[Fault]:
    """Where the records of a JSON-lines input break `schema`, each record checked alone
    (record `i` is at `where/i`)."""
    return _faults(name, schema, ((r, f"{where}/{i}") for i, r in enumerate(records)), file)


def _faults(name: str, schema: Any, values: Iterable[tuple[Any, str]], file: str) -> list[Fault]:
    if schema is None or schema is True:
        return []
    from jsonschema_specifications import REGISTRY as METASCHEMAS  # type: ignore[import-untyped]
    from referencing.exceptions import Unresolvable

    from meta.steps.validate_node import dialect_of

    dialect = dialect_of(schema)
    if dialect is None:
        return [Fault(file, "", f"input '{name}': its schema names an unknown draft")]
    validator = dialect.validator(schema, registry=METASCHEMAS)
    faults: list[Fault] = []
    for value, where in values:
        try:
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:
            reason = f"input '{name}': its schema's $ref {exc} is not inside it"
            return [Fault(file, "", reason)]
        except RecursionError:
            reason = (
                f"input '{name}': its schema refers to itself without end (a $ref that leads "
                "back to where it started, never going down the value)"
            )
            return [Fault(file, "", reason)]
        for error in errors:
            inside = pointer(list(error.absolute_path))
            message = error.message
            if len(message) > MAX_MESSAGE:
                message = message[:MAX_MESSAGE] + "..."
            faults.append(Fault(file, where + inside, f"input '{name}': {message}"))
            if len(faults) >= MAX_FAULTS:
                return faults
    return faults
