"""A JSON Schema description, loaded once: checked against draft 2020-12, every `$ref` resolved
locally (never fetched), and every `x-meta` annotation checked against its own schema.

Everything downstream works with JSON pointers into the description's document: `nodes` maps the
pointer of every subschema to it, `refs` maps the pointer of every subschema holding a `$ref` to
the pointer of the subschema it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchAnchor, Unresolvable, Unretrievable
from referencing.jsonschema import DRAFT202012

from meta.errors import Fault, UserError, pointer, unescape
from meta.flow.files import display_path
from meta.hookspecs import Description

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_SUFFIXES = (".schema.json", ".schema.yaml", ".schema.yml")

# Keywords whose values are subschemas (draft 2020-12), by shape.
ONE_SCHEMA = frozenset(
    {
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
LIST_OF_SCHEMAS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
MAP_OF_SCHEMAS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)
DEF_POINTER = re.compile(r"^/(\$defs|definitions)/([^/]+)$")


class RemoteReference(Exception):
    """Raised by the registry's retrieve function: nothing outside the description is fetched."""


def _refuse(uri: str) -> Resource[Any]:
    raise RemoteReference(uri)


@dataclass
class Schema:
    """A loaded description: its document, its subschemas by pointer, refs and x-meta."""

    path: Path
    file: str
    document: dict[str, Any]
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every subschema that is an object, by JSON pointer, in document order."""
    refs: dict[str, str | None] = field(default_factory=dict)
    """Pointer of a subschema with `$ref` -> pointer of its target (None: a boolean schema)."""
    x_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Pointer of a subschema -> its `x-meta` object (checked)."""

    @property
    def root_meta(self) -> dict[str, Any]:
        return self.x_meta.get("", {})

    def fault(self, where: str, reason: str) -> Fault:
        return Fault(self.file, where, reason)

    def error(self, where: str, reason: str) -> UserError:
        return UserError(self.fault(where, reason))

    def at(self, where: str) -> dict[str, Any]:
        return self.nodes[where]

    def deref(self, where: str) -> str | None:
        """Follow `$ref`s from the subschema at `where`; None for a boolean schema or a loop."""
        seen: set[str] = set()
        current: str | None = where
        while current is not None and current in self.refs:
            if current in seen:
                return None
            seen.add(current)
            current = self.refs[current]
        return current

    def defs(self) -> Iterator[tuple[str, str]]:
        """(name, pointer) of every top-level `$defs` (or `definitions`) entry, in order."""
        for where in self.nodes:
            found = DEF_POINTER.match(where)
            if found:
                yield unescape(found.group(2)), where

    def title(self) -> str:
        title = self.document.get("title")
        return title if isinstance(title, str) else ""

    def stem(self) -> str:
        name = self.path.name
        for suffix in (*SCHEMA_SUFFIXES, ".json", ".yaml", ".yml"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name


def child(where: str, *parts: str | int) -> str:
    return where + pointer(parts)


def is_object_type(schema: dict[str, Any]) -> bool:
    """An object schema: `type` is (or lists) object, or, without `type`, it has properties."""
    return _is_type(schema, "object", "properties")


def is_array_type(schema: dict[str, Any]) -> bool:
    """An array schema: `type` is (or lists) array, or, without `type`, it has items."""
    return _is_type(schema, "array", "items")


def _is_type(schema: dict[str, Any], name: str, keyword: str) -> bool:
    kind = schema.get("type")
    if kind is None:
        return keyword in schema
    return kind == name or (isinstance(kind, list) and name in kind)


def claims_json_schema(description: Description) -> bool:
    """Whether the description is meant as a draft 2020-12 JSON Schema: it says so in `$schema`,
    or, saying nothing, its file is named `*.schema.json` (or `.yaml`)."""
    document = description.document
    if not isinstance(document, dict):
        return False
    declared = document.get("$schema")
    if isinstance(declared, str):
        return declared.rstrip("#") in (DRAFT_2020_12, DRAFT_2020_12.replace("https:", "http:"))
    if declared is not None:
        return True  # not a string: the metaschema check names the fault
    return description.path.name.lower().endswith(SCHEMA_SUFFIXES)


_CACHE: list[tuple[Path, Any, Schema]] = []


def load(description: Description) -> Schema | None:
    """The description as a checked `Schema`; None when it is not a draft 2020-12 JSON Schema.

    A JSON Schema with faults (invalid against the metaschema, a `$ref` that is remote or does not
    resolve, a bad `x-meta`) raises a `UserError` naming the file and the JSON pointer of each
    fault. Results are remembered for the last few documents (score, then generate)."""
    if not claims_json_schema(description):
        return None
    for path, document, schema in _CACHE:
        if document is description.document and path == description.path:
            return schema
    schema = _load(description)
    _CACHE.append((description.path, description.document, schema))
    del _CACHE[:-8]
    return schema


def _load(description: Description) -> Schema:
    document: dict[str, Any] = description.document
    schema = Schema(description.path, display_path(description.path), document)
    _check_metaschema(schema)
    base = description.path.resolve().as_uri()
    resource = DRAFT202012.create_resource(document)
    registry: Registry[Any] = Registry(retrieve=_refuse).with_resource(base, resource)  # type: ignore[call-arg]
    resolver = registry.resolver(base).in_subresource(resource)
    pending: list[tuple[str, str, str, Any]] = []
    by_id: dict[int, str] = {}
    _walk(schema, document, "", base, resolver, pending, by_id)
    faults = [f for f in (_resolve(schema, *ref, by_id) for ref in pending) if f is not None]
    if faults:
        raise UserError(faults)
    faults = list(_x_meta_faults(schema))
    if faults:
        raise UserError(faults)
    return schema


def _check_metaschema(schema: Schema) -> None:
    checker = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    errors = sorted(
        checker.iter_errors(schema.document), key=lambda e: (_where(e.absolute_path), e.message)
    )
    if errors:
        raise UserError(
            schema.fault(_where(e.absolute_path), f"not a valid JSON Schema: {e.message}")
            for e in errors
        )


def _where(path: Any) -> str:
    return pointer(list(path))


def _walk(
    schema: Schema,
    node: Any,
    where: str,
    base: str,
    resolver: Any,
    pending: list[tuple[str, str, str, Any]],
    by_id: dict[int, str],
) -> None:
    """Record every subschema below `node`; `base` is the URI `$ref`s resolve against here."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$id"), str):
        base = urljoin(base, node["$id"])
        resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
    schema.nodes[where] = node
    by_id[id(node)] = where
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            pending.append((where, value, base, resolver))
        elif key == "x-meta":
            schema.x_meta[where] = value
        elif key in ONE_SCHEMA:
            _walk(schema, value, child(where, key), base, resolver, pending, by_id)
        elif key in LIST_OF_SCHEMAS and isinstance(value, list):
            for i, sub in enumerate(value):
                _walk(schema, sub, child(where, key, i), base, resolver, pending, by_id)
        elif key in MAP_OF_SCHEMAS and isinstance(value, dict):
            for name, sub in value.items():
                _walk(schema, sub, child(where, key, name), base, resolver, pending, by_id)


def _resolve(
    schema: Schema, where: str, ref: str, base: str, resolver: Any, by_id: dict[int, str]
) -> Fault | None:
    at = child(where, "$ref")
    try:
        resolved = resolver.lookup(ref)
    except Unresolvable as exc:
        if isinstance(exc.__cause__, Unretrievable):
            target = urldefrag(urljoin(base, ref)).url
            names = "" if target == ref else f" (it names {target})"
            return schema.fault(
                at,
                f"$ref '{ref}' is not local{names}: only references inside this file are "
                "resolved, never fetched",
            )
        if isinstance(exc, NoSuchAnchor):
            missing = f"no $anchor '{exc.anchor}'"
        else:
            missing = f"nothing at '{urldefrag(ref).fragment or ref}'"
        return schema.fault(at, f"$ref '{ref}' does not resolve: {missing} in this file")
    contents = resolved.contents
    if isinstance(contents, bool):
        schema.refs[where] = None
        return None
    found = by_id.get(id(contents)) if isinstance(contents, dict) else None
    if found is None:
        return schema.fault(at, f"$ref '{ref}' does not point at a schema")
    schema.refs[where] = found
    return None


def x_meta_schema() -> dict[str, Any]:
    """The JSON Schema of the x-meta vocabulary (shipped as package data)."""
    text = files("meta_generators").joinpath("x-meta.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _x_meta_checkers() -> tuple[Draft202012Validator, Draft202012Validator]:
    """Validators for x-meta on the root and on any other subschema."""
    document = x_meta_schema()
    uri = document["$id"]
    registry: Registry[Any] = Registry(retrieve=_refuse).with_resource(  # type: ignore[call-arg]
        uri, DRAFT202012.create_resource(document)
    )
    return (
        Draft202012Validator({"$ref": f"{uri}#/$defs/root"}, registry=registry),
        Draft202012Validator({"$ref": f"{uri}#/$defs/node"}, registry=registry),
    )


def _x_meta_faults(schema: Schema) -> Iterator[Fault]:
    root, node = _x_meta_checkers()
    for where, value in schema.x_meta.items():
        at = child(where, "x-meta")
        kind = "root" if where == "" else "node"
        checker = root if kind == "root" else node
        errors = sorted(
            checker.iter_errors(value), key=lambda e: (_where(e.absolute_path), e.message)
        )
        for error in errors:
            yield from _x_meta_fault(schema, at, error, kind)
        misplaced = kind == "node" and isinstance(value, dict) and "dependsOn" in value
        if misplaced and not DEF_POINTER.match(where):
            yield schema.fault(
                child(at, "dependsOn"),
                "x-meta.dependsOn belongs on a $defs entry (it names other $defs entries)",
            )


def _x_meta_fault(schema: Schema, at: str, error: ValidationError, kind: str) -> Iterator[Fault]:
    where = at + _where(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
        for key in error.instance:
            if key not in known:
                scope = "on the root" if kind == "root" and where == at else "here"
                yield schema.fault(
                    child(where, key),
                    f"unknown x-meta key '{key}' (known {scope}: {', '.join(known)})",
                )
        return
    yield schema.fault(where, f"bad x-meta: {error.message}")
