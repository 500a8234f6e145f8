"""What a person would want to know first about a schema no generator took (or one that was
taken): its draft, its overlay, its root, its node types and the children fields a walk
follows, and what a walk leaves to the parent nodes."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from meta.hookspecs import Description

from .flows import schema_of, type_name
from .schema_model import Schema, claims_json_schema, unknown_dialect
from .structure import MapField, structure

SHOWN = 8
"""Names listed before '...' in a line."""


def describe(schema: Schema) -> list[str]:
    dialect = schema.dialect
    how = "from $schema" if dialect.declared else "no $schema: read as the newest draft"
    lines = [f"a JSON Schema, {dialect.name} ({how})"]
    if schema.overlay is not None:
        lines.append(
            f"overlay {schema.overlay.file}: x-meta at {len(schema.overlay.entries)} places"
        )
    found = structure(schema)
    lines.append(f"root: {_root(schema)}")
    types = [type_name(schema, where) for where in found.types]
    lines.append(f"node types: {len(types)}{_names(types)}")
    lines.append(f"children fields: {', '.join(found.fields) or 'none'}")
    if found.left_out:
        lines.append(
            "not walked: " + "; ".join(f"{name} ({why})" for name, why in found.left_out.items())
        )
    walked = [m for m in found.maps if m.field in found.fields]
    if walked:
        lines.append(f"maps of entries keyed by name, walked as nodes: {_places(walked)}")
    others = [m for m in found.maps if m.field not in found.fields]
    if others:
        lines.append(
            "maps whose entries may be other than nodes (checked with the node holding them; "
            f"on the top node, a unit per entry): {_places(others)}"
        )
    return lines


def _places(maps: list[MapField]) -> str:
    return f"{', '.join(m.at for m in maps[:SHOWN])}{_more(maps)}"


def _names(names: list[str]) -> str:
    return f" ({', '.join(names[:SHOWN])}{_more(names)})" if names else ""


def _more(names: list[Any]) -> str:
    return " ..." if len(names) > SHOWN else ""


def _root(schema: Schema) -> str:
    found = structure(schema)
    where = schema.deref("")
    if where is None:
        return "a boolean schema"
    if len(found.roots) == 1:
        return f"an object type ({type_name(schema, found.roots[0])})"
    if found.roots:
        return f"one of {len(found.roots)} object types"
    kind = schema.at(where).get("type")
    if kind is not None:
        return f"type {kind}, not an object"
    return "no object type (no type, no properties)"


def explain(
    description: Description,
    patterns: Collection[str],
    decline: Callable[[Schema], str | None],
    plan: Callable[[Schema], str],
) -> tuple[list[str], str]:
    """What a JSON Schema generator saw in `description` and why it scores what it scores:
    `decline` says why a schema is not of its kind (None: it is), `plan` what it would make."""
    document = description.document
    if not isinstance(document, dict):
        # `true` and `false` are JSON Schemas too, of no structure to make a flow of.
        shown = json.dumps(document)[:40]
        return [], f"the document is {shown}, not an object: nothing to make a flow of"
    if not claims_json_schema(description):
        named = document.get("$schema")
        said = f"its $schema {named!r} is no draft" if isinstance(named, str) else "no $schema"
        return (
            [],
            f"not a JSON Schema ({said}, not named *.schema.json, no schema keywords at the top)",
        )
    unknown = unknown_dialect(description)
    if unknown is not None:
        return [f"$schema {unknown!r}: not a JSON Schema draft jsonschema knows"], (
            "unknown $schema"
        )
    schema = schema_of(description)
    seen = describe(schema)
    pattern = schema.root_meta.get("pattern")
    if pattern is not None:
        if pattern in patterns:
            return seen, f"x-meta.pattern is {pattern}: {plan(schema)}"
        return seen, f"x-meta.pattern is {pattern}, which another generator makes"
    why = decline(schema)
    return seen, plan(schema) if why is None else why
