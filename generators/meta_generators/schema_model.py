"""A JSON Schema description, loaded once: checked against the metaschema of its own draft,
every `$ref` resolved locally (never fetched) and each target resolved once, and every `x-meta`
annotation (inline, or from an overlay file beside the schema) checked against its own schema.

Everything downstream works with keys of subschemas: the JSON pointer of a subschema of the
description's document (`""` is the root), or `FILE#POINTER` for a subschema of a file beside it
that a `$ref` reaches. `nodes` maps the key of every subschema reached to it, `refs` maps the key
of every subschema holding a `$ref` (or `$recursiveRef`, `$dynamicRef`) to the key it names.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema_specifications import REGISTRY as METASCHEMAS  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import NoSuchAnchor, Unresolvable, Unretrievable
from referencing.jsonschema import DRAFT202012

from meta.errors import Fault, UserError, pointer
from meta.flow.files import display_path, nested_past, parse_json, parse_yaml_data, read_text
from meta.hookspecs import Description
from meta.steps.validate_node import Dialect, LocalFiles, dialect_of, local_registry
from meta.steps.yamlnodes import MAX_DEPTH

from .keywords import DEF_POINTER as DEF_POINTER
from .keywords import REF_KEYWORDS, subschemas
from .overlay import Overlay, read_overlay

SCHEMA_SUFFIXES = (".schema.json", ".schema.yaml", ".schema.yml")
OLD_DRAFTS = frozenset({"draft-04", "draft-06", "draft-07"})
"""Drafts in which a `$ref` makes its siblings ignored."""
UNREAD_DRAFTS = frozenset({"draft-03"})
"""Drafts jsonschema knows and the generators do not read: draft 3's `type` may hold schemas,
its `required` is a boolean of each property, and it has `extends` and `disallow`."""
STRUCTURAL = frozenset(
    {"type", "properties", "patternProperties", "additionalProperties", "items", "prefixItems"}
    | {"allOf", "anyOf", "oneOf"}
)
FRAMES_PER_LEVEL = 12
"""Python frames jsonschema takes for each level of a schema it checks against a metaschema
(10 at most, measured: drafts 2019-09 and 2020-12, a chain of `items`), with room to spare."""
_ROOM = threading.Lock()
"""Held while the recursion limit is raised for a check."""
SCHEMA_HINTS = frozenset({"$defs", "definitions", "properties", "$ref", "oneOf", "anyOf"})
"""Top-level keywords that make a document without `$schema` read as a schema."""


@dataclass
class Schema:
    """A loaded description: its document, its subschemas by key, refs and x-meta."""

    path: Path
    file: str
    document: dict[str, Any]
    dialect: Dialect
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every subschema that is an object, by key, the document's first in document order."""
    refs: dict[str, str | None] = field(default_factory=dict)
    """Key of a subschema with `$ref` -> key of its target (None: a boolean schema)."""
    x_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Key of a subschema -> its `x-meta` object (checked), inline or from the overlay."""
    overlay: Overlay | None = None
    files: dict[str, Path] = field(default_factory=dict)
    """The other files that `$ref`s reach, by the name their keys start with (their path
    relative to the schema's folder)."""
    root: Path | None = None
    """The folder files are read under (`--schema-root`); None: the schema's own folder."""
    memo: dict[str, Any] = field(default_factory=dict)
    """Analyses of the schema, each made once (score, then generate)."""

    @property
    def root_meta(self) -> dict[str, Any]:
        return self.x_meta.get("", {})

    def runs(self, where: str) -> bool:
        """Whether the subschema at `where` has an `x-meta.run`: a step of the user's."""
        return isinstance(self.x_meta.get(where, {}).get("run"), dict)

    def fault(self, where: str, reason: str) -> Fault:
        """A fault at `where`: in the overlay when it lies inside x-meta the overlay gave, in
        a file beside the schema when `where` is a key into one."""
        if self.overlay is not None:
            placed = self.overlay.place(where)
            if placed is not None:
                return Fault(self.overlay.file, placed, reason)
        name, hash_, inside = where.partition("#")
        if hash_ and name in self.files:
            return Fault(display_path(self.files[name]), inside, reason)
        return Fault(self.file, where, reason)

    def error(self, where: str, reason: str) -> UserError:
        return UserError(self.fault(where, reason))

    def at(self, where: str) -> dict[str, Any]:
        return self.nodes[where]

    def deref(self, where: str) -> str | None:
        """Follow `$ref`s from the subschema at `where`; None for a boolean schema or a loop.
        From draft 2019-09 on, a `$ref` beside keywords of structure (type, properties...) is
        one more constraint on that subschema, which stays where it is (`beside` follows it)."""
        seen: set[str] = set()
        current: str | None = where
        while current is not None and current in self.refs and not self._structured(current):
            if current in seen:
                return None
            seen.add(current)
            current = self.refs[current]
        return current

    def beside(self, where: str) -> str | None:
        """The target of a `$ref` that sits beside keywords of structure at `where` (draft
        2019-09 on: both apply); None when there is none (or it names a schema not read as
        a node: a metaschema, a boolean)."""
        return self.refs[where] if self._structured(where) else None

    def _structured(self, where: str) -> bool:
        """Whether the subschema at `where` has keywords of structure beside its `$ref`, which
        then does not stand for it (draft 2019-09 on)."""
        if self.dialect.specification.name in OLD_DRAFTS or where not in self.refs:
            return False
        return bool(STRUCTURAL & self.nodes.get(where, {}).keys())

    def locate(self, where: str) -> tuple[Path, str]:
        """The file and the JSON pointer inside it of the subschema keyed `where`."""
        name, hash_, inside = where.partition("#")
        if hash_ and name in self.files:
            return self.files[name], inside
        return self.path, where

    def defs(self) -> Iterator[tuple[str, str]]:
        """(name, pointer) of every top-level `$defs` (or `definitions`) entry, in order."""
        for where in self.nodes:
            found = DEF_POINTER.match(where)
            if found:
                yield found.group(2).replace("~1", "/").replace("~0", "~"), where

    def title(self) -> str:
        title = self.document.get("title")
        return title if isinstance(title, str) else ""

    def stem(self) -> str:
        return stem(self.path)


def stem(path: Path) -> str:
    """The name of a schema file without its schema suffix (`ci.schema.json` -> `ci`)."""
    name = path.name
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
    """Whether the description is meant as a JSON Schema: it names a draft in `$schema` (any
    string: an unknown one is reported), or, naming none, its file is named `*.schema.json` (or
    `.yaml`) or its top level holds schema keywords (`$defs`, `properties`...)."""
    document = description.document
    if not isinstance(document, dict):
        return False
    declared = document.get("$schema")
    if declared is not None:
        known = dialect_of(document) is not None
        if known or not isinstance(declared, str) or "json-schema.org" in declared:
            return True
        # Another vocabulary's `$schema` (OpenAPI's dialect): its name or keywords tell.
    if description.path.name.lower().endswith(SCHEMA_SUFFIXES):
        return True
    return "kind" not in document and bool(SCHEMA_HINTS & document.keys())


def unknown_dialect(description: Description) -> str | None:
    """The `$schema` of a description that claims to be a JSON Schema of a draft jsonschema
    does not know (None otherwise)."""
    document = description.document
    if claims_json_schema(description) and dialect_of(document) is None:
        return str(document.get("$schema"))
    return None


_CACHE: list[tuple[tuple[Path, Path | None], Any, Schema]] = []


def forget() -> None:
    """Forget the schemas read so far (a benchmark measures reading them afresh)."""
    _CACHE.clear()


def load(description: Description) -> Schema | None:
    """The description as a checked `Schema`; None when it is not a JSON Schema of a known draft.

    A JSON Schema with faults (invalid against its draft's metaschema, a `$ref` that is remote or
    does not resolve, a bad `x-meta`) raises a `UserError` naming the file and the JSON pointer
    of each fault. Results are remembered for the last few documents (score, then generate)."""
    if not claims_json_schema(description):
        return None
    dialect = dialect_of(description.document)
    if dialect is None:
        return None
    if dialect.specification.name in UNREAD_DRAFTS:
        raise UserError(
            Fault(
                display_path(description.path),
                "/$schema",
                f"{description.document['$schema']!r} names draft 3, which is not read: "
                "the generators read drafts 04 to 2020-12",
            )
        )
    key = (description.path, description.schema_root)
    for cached, document, schema in _CACHE:
        if document is description.document and cached == key:
            return schema
    schema = _load(description, dialect)
    _CACHE.append((key, description.document, schema))
    del _CACHE[:-8]
    return schema


def read_schema_file(path: Path) -> Any:
    """A JSON or YAML file beside the schema (a `$ref` target), read as the schema is."""
    text = read_text(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml_data(text, display_path(path))
    return parse_json(text, display_path(path))


def _load(description: Description, dialect: Dialect) -> Schema:
    document: dict[str, Any] = description.document
    schema = Schema(description.path, display_path(description.path), document, dialect)
    root = description.schema_root
    if root is not None and not description.path.resolve().is_relative_to(root):
        raise schema.error("", f"the schema is not under --schema-root {display_path(root)}")
    schema.root = root
    _check_metaschema(schema)
    registry, base, retrieve = local_registry(
        description.path, document, dialect, read_schema_file, root
    )
    _Resolver(schema, registry, retrieve).run(base)
    schema.x_meta.update({where: meta for where, meta in _inline_x_meta(schema)})
    overlay = read_overlay(description.path, stem(description.path))
    if overlay is not None:
        schema.overlay = overlay
        faults = list(overlay.attach(schema))
        if faults:
            raise UserError(faults)
    faults = list(_x_meta_faults(schema))
    if faults:
        raise UserError(faults)
    return schema


def _check_metaschema(schema: Schema) -> None:
    """Check the schema against its draft's metaschema. jsonschema's check recurses, some 10
    frames a level, so a schema nested past MAX_DEPTH levels (as no document `meta` reads may
    be) is a fault first, and one within it is given the frames it needs."""
    deep = nested_past(schema.document, MAX_DEPTH)
    if deep is not None:
        raise schema.error(deep, f"nested more than {MAX_DEPTH} levels deep")
    validator = schema.dialect.validator
    checker = validator(validator.META_SCHEMA)
    with _ROOM:
        limit = sys.getrecursionlimit()
        # For the check only: a lasting higher limit would let json read deeper data than the
        # documented 1,000 levels. One check at a time, so that none lowers it under another.
        sys.setrecursionlimit(limit + MAX_DEPTH * FRAMES_PER_LEVEL)
        try:
            errors = sorted(
                checker.iter_errors(schema.document),
                key=lambda e: (_where(e.absolute_path), e.message),
            )
        finally:
            sys.setrecursionlimit(limit)
    if errors:
        raise UserError(
            schema.fault(_where(e.absolute_path), f"not a valid JSON Schema: {e.message}")
            for e in errors[:20]
        )


def _where(path: Any) -> str:
    return pointer(list(path))


def _inline_x_meta(schema: Schema) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, node in schema.nodes.items():
        if "x-meta" in node:
            yield where, node["x-meta"]


class _Resolver:
    """Walks the schema from its root, records every subschema, and resolves every reference,
    each distinct (base URI, reference) once. A target no walk has recorded (a `$ref` into a
    place that is not a subschema keyword, or into a file beside the schema) is found by its
    place in its document and walked from there."""

    def __init__(self, schema: Schema, registry: Registry[Any], retrieve: LocalFiles) -> None:
        self.schema = schema
        self.registry = registry
        self.retrieve = retrieve
        self.pending: list[tuple[str, str, str, str]] = []
        self.by_id: dict[int, str] = {}
        self.indexes: dict[str, dict[int, str]] = {}
        self.resolved: dict[tuple[str, str], str | Fault | None] = {}
        self.faults: list[Fault] = []

    def run(self, base: str) -> None:
        self._walk(self.schema.document, "", base)
        while self.pending:
            where, keyword, ref, ref_base = self.pending.pop(0)
            outcome = self.resolved.get((ref_base, ref), _UNSEEN)
            if outcome is _UNSEEN:
                outcome = self._resolve(where, keyword, ref, ref_base)
                self.resolved[(ref_base, ref)] = outcome
            if isinstance(outcome, Fault):
                self.faults.append(self.schema.fault(child(where, keyword), outcome.reason))
            else:
                self.schema.refs[where] = outcome  # type: ignore[assignment]
        self.faults.extend(_ref_cycles(self.schema))
        if self.faults:
            raise UserError(self.faults)

    def _walk(self, node: Any, where: str, base: str) -> None:
        stack = [(node, where, base)]
        specification = self.schema.dialect.specification
        while stack:
            node, where, base = stack.pop()
            if not isinstance(node, dict) or id(node) in self.by_id:
                continue
            own_id = specification.id_of(node)
            if own_id:
                base = urldefrag(urljoin(base, own_id)).url
            self.schema.nodes[where] = node
            self.by_id[id(node)] = where
            for keyword in REF_KEYWORDS:
                if isinstance(node.get(keyword), str):
                    self.pending.append((where, keyword, node[keyword], base))
                    break
            found = list(subschemas(node))
            stack.extend((sub, where + pointer(parts), base) for parts, sub in reversed(found))

    def _resolve(self, where: str, keyword: str, ref: str, base: str) -> str | Fault | None:
        try:
            resolved = self.registry.resolver(base).lookup(ref)
        except Unresolvable as exc:
            return self._unresolved(ref, base, exc)
        contents = resolved.contents
        if isinstance(contents, bool):
            return None
        if not isinstance(contents, dict):
            return Fault("", "", f"{keyword} '{ref}' does not point at a schema")
        known = self.by_id.get(id(contents))
        if known is not None:
            return known
        target_uri = urldefrag(urljoin(base, ref)).url
        if target_uri in METASCHEMAS:
            return None  # a draft's metaschema: any schema, read as opaque data, not walked
        key = self._place(contents, target_uri)
        if key is None:
            return Fault("", "", f"{keyword} '{ref}' does not point at a schema")
        self._walk(contents, key, target_uri)
        return key

    def _place(self, contents: dict[str, Any], uri: str) -> str | None:
        """The key of `contents`: its pointer in the schema's document, or `FILE#POINTER` in
        the file beside it that `uri` names."""
        inside = self._index("", self.schema.document).get(id(contents))
        if inside is not None:
            return inside
        path = self.retrieve.path_of(uri)
        if path is None:
            return None
        name = Path(os.path.relpath(path, self.schema.path.parent.resolve())).as_posix()
        self.schema.files[name] = path
        found = self._index(name, self.retrieve(uri).contents).get(id(contents))
        return None if found is None else f"{name}#{found}"

    @property
    def _root(self) -> str:
        """The folder files are read under, as faults name it."""
        if self.schema.root is None:
            return "the schema's folder"
        return f"{display_path(self.schema.root)}/ (--schema-root)"

    def _index(self, name: str, document: Any) -> dict[int, str]:
        """Pointer of every object in a document, by identity, built once per document."""
        if name not in self.indexes:
            index: dict[int, str] = {}
            stack: list[tuple[Any, str]] = [(document, "")]
            while stack:
                node, where = stack.pop()
                if isinstance(node, dict):
                    index.setdefault(id(node), where)
                    stack.extend((v, child(where, k)) for k, v in node.items())
                elif isinstance(node, list):
                    stack.extend((v, child(where, i)) for i, v in enumerate(node))
            self.indexes[name] = index
        return self.indexes[name]

    def _unresolved(self, ref: str, base: str, exc: Unresolvable) -> Fault:
        if isinstance(exc.__cause__, Unretrievable):
            cause = exc.__cause__.__cause__
            if isinstance(cause, UserError):
                return Fault("", "", f"$ref '{ref}' names a file that cannot be read: {cause}")
            target = urldefrag(urljoin(base, ref)).url
            missing = self.retrieve.path_of(target, existing=False)
            if missing is not None and not missing.is_file():
                return Fault(
                    "",
                    "",
                    f"$ref '{ref}' names {display_path(missing)}: no such file",
                )
            names = "" if target == ref else f" (it names {target})"
            if missing is not None:
                return Fault(
                    "", "", f"$ref '{ref}'{names} is a link to a file outside {self._root}"
                )
            hint = (
                "; meta generate --schema-root DIR reads files anywhere under DIR"
                if self.schema.root is None
                else ""
            )
            return Fault(
                "",
                "",
                f"$ref '{ref}' is not local{names}: only files under {self._root} are read (by "
                f"path, or by the $id written in them), never fetched{hint}",
            )
        if isinstance(exc, NoSuchAnchor):
            absent = f"no $anchor '{exc.anchor}'"
        else:
            absent = f"nothing at '{urldefrag(ref).fragment or ref}'"
        return Fault("", "", f"$ref '{ref}' does not resolve: {absent} in this file")


_UNSEEN = object()


IN_PLACE = (
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "dependencies",
)
"""Keywords whose subschemas apply to the very value their schema checks (not to a part of it):
a ring through them and `$ref`s never reaches a smaller value."""


def _ref_cycles(schema: Schema) -> Iterator[Fault]:
    """A fault per cycle of `$ref`s, each naming the next (or a schema applied in place, by
    `allOf`, `not`, `then`...), none reaching a part of the value: a validator follows them on
    the same value for ever. One naming a schema that holds it under `properties` or `items`
    (a tree type) is no cycle: that goes down the data."""
    state: dict[str, int] = {}  # 1: on the path being walked; 2: done
    for start in schema.nodes:
        if start in state:
            continue
        path = [start]
        pending = [iter(_applied(schema, start))]
        state[start] = 1
        while pending:
            following = next(pending[-1], None)
            if following is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(following) == 1:
                yield _cycle_fault(schema, path[path.index(following) :])
            elif following not in state:
                state[following] = 1
                path.append(following)
                pending.append(iter(_applied(schema, following)))


def _applied(schema: Schema, where: str) -> list[str]:
    """The subschemas checked against the same value as the one at `where`: what its `$ref`
    names, and (unless its draft ignores a `$ref`'s siblings) those of its in-place keywords."""
    target = schema.refs.get(where)
    found = [] if target is None else [target]
    node = schema.nodes.get(where, {})
    if target is not None and schema.dialect.specification.name in OLD_DRAFTS:
        return found
    for keyword in IN_PLACE:
        value = node.get(keyword)
        if isinstance(value, list):
            found += (child(where, keyword, i) for i in range(len(value)))
        elif isinstance(value, dict):
            names = value if keyword.startswith("depend") else [None]
            found += (child(where, keyword, *([] if n is None else [n])) for n in names)
    return [place for place in found if place in schema.nodes]


def _cycle_fault(schema: Schema, cycle: list[str]) -> Fault:
    first = min((place for place in cycle if place in schema.refs), key=list(schema.nodes).index)
    turn = cycle.index(first)
    ordered = [*cycle[turn:], *cycle[:turn], first]
    node = schema.nodes[first]
    keyword = next(k for k in REF_KEYWORDS if isinstance(node.get(k), str))
    if len(cycle) == 1:
        reason = (
            f"a $ref cycle: {keyword} names the schema it is written in, so checking a value "
            "follows it for ever"
        )
    else:
        shown = " -> ".join(where or "/" for where in ordered)
        what = "names" if all(place in schema.refs for place in cycle) else "names or applies"
        reason = (
            f"a $ref cycle: {shown}: each {what} the next, so checking a value follows them "
            "for ever"
        )
    return schema.fault(child(first, keyword), reason)


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
    registry: Registry[Any] = Registry().with_resource(uri, DRAFT202012.create_resource(document))
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
