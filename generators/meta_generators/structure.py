"""The structure of a schema as a person reads it: the node types (object schemas reachable from
the root), and the children fields a walk can follow from one node to the nodes below it.

A property holds child nodes when its schema (through `$ref`s) is an object type (one child),
an array whose `items` is one (many children), a `oneOf`/`anyOf` of such types, or an object of
entries keyed by name (`additionalProperties`, `patternProperties`) whose every value is one (a
map: one child per entry, walked as `over.entries`); its properties are read through
`allOf`/`anyOf`/`oneOf` branches too. A field is walked only when it holds nodes of one shape in
every node type that has it (the walk descends into the same fields at every node), and, when
the walk only validates, nodes of one schema (a unit knows its node's field, not its parent's
type); a map that may hold other values stays in its parent's data, checked with it. Each
field left out is noted with the reason, for `explain`. The analysis runs once per schema
(and set of fields left to units of their own).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .schema_model import Schema, child

MAP_KEYWORDS = ("additionalProperties", "patternProperties")


@dataclass(frozen=True)
class Place:
    """Where one node type declares a children field."""

    field: str
    owner: str
    """The node type declaring it."""
    shape: str
    """'one' (an object), 'many' (an array of objects) or 'map' (an object of objects keyed by
    name)."""
    element: str
    """The key of the schema of each child (the property, or its `items`), `$ref`s followed."""
    targets: tuple[str, ...]
    """The node types a child may be."""


@dataclass(frozen=True)
class MapField:
    """A property of a node type holding entries keyed by name (a CI workflow's `jobs`)."""

    field: str
    owner: str
    at: str
    """The property's key."""
    entries: tuple[str, ...]
    """The keys of the schemas an entry is checked against (`additionalProperties`, or each
    of `patternProperties`)."""
    nodes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(entry schema, its node types) per entry schema when every value the map may hold is a
    node (the map is walked); () otherwise."""


@dataclass
class Structure:
    roots: list[str]
    """The node types the root may be (several when the root is a `oneOf`/`anyOf` of them)."""
    only_objects: bool = True
    """Whether the root is an object whatever the document (False: it may also be a list, a
    string... as `[object, boolean]` or a `oneOf` with other options allows)."""
    types: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Node types by key, in the order the walk from the root finds them."""
    fields: list[str] = field(default_factory=list)
    """The children fields, in the order found."""
    places: dict[str, list[Place]] = field(default_factory=dict)
    """Where each children field is declared."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Fields that hold nodes somewhere but are not walked -> why."""
    maps: list[MapField] = field(default_factory=list)
    """Properties holding entries keyed by name, in the order found."""


LEFT_TO_UNITS = "its entries are units of their own (x-meta.entries)"


def structure(schema: Schema, leave: frozenset[str] = frozenset()) -> Structure:
    """The schema's structure, computed once and kept on the schema; the fields in `leave` are
    not walked (their entries are units of their own)."""
    key = "structure:" + json.dumps(sorted(leave))
    found = schema.memo.get(key)
    if not isinstance(found, Structure):
        found = _analyse(schema, dict.fromkeys(leave, LEFT_TO_UNITS))
        schema.memo[key] = found
    return found


def object_types(
    schema: Schema, where: str, *, loose: bool = False, strict: bool = False
) -> list[str]:
    """The object types the subschema at `where` stands for: itself (through `$ref`s) when it is
    one, the options of a `oneOf`/`anyOf` whose every option is one; [] otherwise. `loose`
    (for the root) takes a type that allows objects among other things (`[object, boolean]`);
    `strict` (for children, which the walk must find to be objects) wants `type: object` said,
    as `properties` alone allow a string too."""
    return _object_types(schema, where, set(), loose, strict)


def _object_types(
    schema: Schema, where: str, seen: set[str], loose: bool = False, strict: bool = False
) -> list[str]:
    target = schema.deref(where)
    if target is None or target in seen:
        return []
    seen.add(target)
    node = schema.at(target)
    kind = node.get("type")
    if kind is not None:
        allowed = "object" in kind if loose and isinstance(kind, list) else _only(kind, "object")
        return [target] if allowed else []
    if not strict and ("properties" in node or any(k in node for k in MAP_KEYWORDS)):
        return [target]
    for keyword in ("oneOf", "anyOf"):
        options = node.get(keyword)
        if isinstance(options, list) and options:
            found: list[str] = []
            for i in range(len(options)):
                named = _object_types(schema, child(target, keyword, i), seen, loose, strict)
                if not named and not loose:
                    return []
                found.extend(t for t in named if t not in found)
            return found
    branches = node.get("allOf")
    if isinstance(branches, list):
        for i in range(len(branches)):
            if _object_types(schema, child(target, "allOf", i), set(seen), strict=strict):
                return [target]
    return []


def _only(kind: Any, name: str) -> bool:
    """`type` allows `name` and nothing else (but null, which a walk skips). A list may hold
    schemas as well as names (draft 3 allowed it): such a type allows more than `name`."""
    if isinstance(kind, str):
        return kind == name
    return isinstance(kind, list) and name in kind and all(k in (name, "null") for k in kind)


def properties_of(schema: Schema, where: str) -> dict[str, list[str]]:
    """Property name -> keys of its declarations in the type at `where`, its own and those of
    its `allOf`/`anyOf`/`oneOf` branches (through `$ref`s)."""
    found: dict[str, list[str]] = {}
    stack, seen = [where], set()
    while stack:
        current = schema.deref(stack.pop(0))
        if current is None or current in seen:
            continue
        seen.add(current)
        node = schema.at(current)
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name in properties:
                at = child(current, "properties", name)
                if at in schema.nodes:
                    found.setdefault(name, []).append(at)
        for keyword in ("allOf", "anyOf", "oneOf"):
            branches = node.get(keyword)
            if isinstance(branches, list):
                stack.extend(child(current, keyword, i) for i in range(len(branches)))
        also = schema.beside(current)
        if also is not None:
            stack.append(also)
    return found


def _place(schema: Schema, owner: str, name: str, at: str) -> Place | MapField | None:
    """How the property at `at` holds nodes: a Place, a MapField (entries keyed by name), or
    None (plain data)."""
    targets = object_types(schema, at, strict=True)
    target = schema.deref(at)
    if target is None:
        return None
    node = schema.at(target)
    if object_types(schema, at) and "properties" not in node:
        entries = _entries(schema, target)
        if entries:
            return MapField(name, owner, at, entries, _map_nodes(schema, target))
    if targets:
        # An object with no properties of its own (a free-form object, a map of strings) is
        # data, not a node.
        if not all(properties_of(schema, t) for t in targets):
            return None
        return Place(name, owner, "one", target, tuple(targets))
    if _only(node.get("type", "array" if "items" in node else None), "array"):
        items = child(target, "items")
        if isinstance(node.get("items"), dict) and items in schema.nodes:
            many = object_types(schema, items, strict=True)
            if many and all(properties_of(schema, t) for t in many):
                element = schema.deref(items) or items
                return Place(name, owner, "many", element, tuple(many))
    return None


def _entries(schema: Schema, target: str) -> tuple[str, ...]:
    """The schemas of the entries of a map (an object whose names are data): those of
    `additionalProperties` or `patternProperties` that describe more than a scalar."""
    node = schema.at(target)
    found = []
    if isinstance(node.get("additionalProperties"), dict):
        found.append(child(target, "additionalProperties"))
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict):
        found.extend(child(target, "patternProperties", p) for p in patterns)
    entries = [at for at in found if at in schema.nodes and _structured(schema, at)]
    return tuple(dict.fromkeys(schema.deref(at) or at for at in entries))


def _map_nodes(schema: Schema, target: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(entry schema, its node types) per entry schema of the map at `target` when every value
    it may hold is a node: `additionalProperties` is false or a node type (absent, it allows
    anything) and so is every `patternProperties` schema (an object type with properties that
    allows no null); () otherwise."""
    node = schema.at(target)
    patterns = node.get("patternProperties")
    found = [child(target, "patternProperties", p) for p in patterns or {}]
    more = node.get("additionalProperties", True)
    if more is True or (more is not False and not isinstance(more, dict)):
        return ()
    if isinstance(more, dict):
        found.append(child(target, "additionalProperties"))
    nodes = []
    for at in found:
        targets = object_types(schema, at, strict=True) if at in schema.nodes else []
        if not targets or not all(_entry_node(schema, t) for t in targets):
            return ()
        nodes.append((schema.deref(at) or at, tuple(targets)))
    return tuple(nodes)


def _entry_node(schema: Schema, target: str) -> bool:
    """Whether the object type at `target` is a node an entry may be: one with properties, that
    allows no null (a walk takes every entry as a node)."""
    kind = schema.at(target).get("type")
    nullable = isinstance(kind, list) and "null" in kind
    return not nullable and bool(properties_of(schema, target))


def _structured(schema: Schema, where: str) -> bool:
    """Whether values of the schema at `where` may be objects or arrays (not only scalars)."""
    target = schema.deref(where)
    if target is None:
        return False
    node = schema.at(target)
    kind = node.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        return any(k in ("object", "array") for k in kinds)
    return any(
        key in node for key in ("properties", "items", "oneOf", "anyOf", "allOf", "$ref")
    ) or bool(object_types(schema, target))


def _walkable(name: str) -> str | None:
    """Why a field name cannot be a children field of the walk (None: it can)."""
    if not name or "/" in name or "~" in name:
        return "its name holds '/' or '~', which the walk's paths do not escape"
    if name.isdigit():
        return "a name of digits reads as an array index in the walk's paths"
    return None


def _analyse(schema: Schema, banned: dict[str, str]) -> Structure:
    found = Structure(object_types(schema, "", loose=True))
    found.only_objects = found.roots == object_types(schema, "")
    while True:
        types, places, plain, maps = _reach(schema, found.roots, banned)
        conflicts = {
            name: f"plain data in {_short(schema, plain[name][0])}"
            for name in places
            if name in plain and name not in banned
        }
        for name, declared in places.items():
            maps_at = [p.owner for p in declared if p.shape == "map"]
            others = [p.owner for p in declared if p.shape != "map"]
            if maps_at and others and name not in banned:
                conflicts.setdefault(
                    name,
                    f"entries keyed by name in {_short(schema, maps_at[0])}, "
                    f"an object or an array in {_short(schema, others[0])}",
                )
        if validates(schema, types):
            for name, owners in _of_several_schemas(schema, places, maps).items():
                if name not in banned:
                    conflicts.setdefault(
                        name,
                        f"nodes of one schema in {_short(schema, owners[0])}, of another in "
                        f"{_short(schema, owners[1])} (a validator checks them with their parent, "
                        "as the schema of their place)",
                    )
        if not conflicts:
            break
        banned.update(conflicts)
    found.types = types
    found.places = {name: p for name, p in places.items() if name not in banned}
    found.fields = list(found.places)
    found.left_out = {name: why for name, why in banned.items() if name in places}
    found.maps = maps
    return found


def validates(schema: Schema, types: Iterable[str]) -> bool:
    """Whether no node type runs a step of its own: the walk's units are the validator's."""
    return not any(schema.runs(where) for where in types)


def _of_several_schemas(
    schema: Schema, places: dict[str, list[Place]], maps: list[MapField]
) -> dict[str, list[str]]:
    """The fields whose nodes are of different schemas in different node types (two owners
    that differ, for each): a unit of the walk knows its node's field, not its parent's type,
    so it could check a node against another place's schema, which may take what its own
    refuses."""
    found: dict[str, list[str]] = {}
    for name, declared in places.items():
        seen: dict[tuple[str, str], str] = {}
        for place in declared:
            if place.shape != "map":
                seen.setdefault(_same(schema, place.element), place.owner)
        for held in maps:
            if held.field == name and held.nodes:
                seen.setdefault(_same(schema, schema.deref(held.at) or held.at), held.owner)
        if len(seen) > 1:
            found[name] = list(seen.values())[:2]
    return found


def _same(schema: Schema, where: str) -> tuple[str, str]:
    """What tells subschemas apart: their file and text (two places written alike are one)."""
    file, _ = schema.locate(where)
    return str(file), json.dumps(schema.at(where), sort_keys=True)


def _reach(
    schema: Schema, roots: list[str], banned: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, list[Place]], dict[str, list[str]], list[MapField]]:
    """Node types reachable from the roots through fields not `banned`; the places of each
    field; where each field is plain data; the properties holding maps of nodes."""
    types: dict[str, dict[str, Any]] = {}
    places: dict[str, list[Place]] = {}
    plain: dict[str, list[str]] = {}
    maps: list[MapField] = []
    queue = list(roots)
    while queue:
        where = queue.pop(0)
        if where in types:
            continue
        types[where] = schema.at(where)
        for name, declarations in properties_of(schema, where).items():
            for at in declarations:
                place = _place(schema, where, name, at)
                if isinstance(place, MapField):
                    if place not in maps:
                        maps.append(place)
                    if not place.nodes:
                        plain.setdefault(name, []).append(at)
                        continue
                    why = _walkable(name)
                    if why is not None:
                        banned.setdefault(name, why)
                    for element, targets in place.nodes:
                        places.setdefault(name, []).append(
                            Place(name, where, "map", element, targets)
                        )
                        if name not in banned:
                            queue.extend(t for t in targets if t not in types)
                elif isinstance(place, Place):
                    why = _walkable(name)
                    if why is not None:
                        banned.setdefault(name, why)
                    places.setdefault(name, []).append(place)
                    if name not in banned:
                        queue.extend(t for t in place.targets if t not in types)
                else:
                    plain.setdefault(name, []).append(at)
    return types, places, plain, maps


def _short(schema: Schema, at: str) -> str:
    file, inside = schema.locate(at)
    return inside if file == schema.path else f"{file.name}#{inside}"
