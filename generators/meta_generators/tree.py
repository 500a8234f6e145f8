"""The tree generator: a schema whose node types refer to node types is a hierarchy, walked by a
`dfs` (or `bfs`) section with one visit case per node type.

A node type is an object schema reached through `$ref`: the root type (the root schema, or what
its `$ref` names) and every type a node type names through a property: `"teams": {"type":
"array", "items": {"$ref": "#/$defs/Team"}}` (many children), `"lead": {"$ref":
"#/$defs/Person"}` (one child), or `oneOf`/`anyOf` of such `$ref`s (children of several types).
Those properties are the walk's children fields.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from meta.errors import UserError
from meta.hookspecs import Description

from . import flows
from .schema_model import Schema, child, is_array_type, is_object_type

PATTERNS = ("dfs", "bfs")
SCORE = 30.0
JINJA_WORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "loop", "self"}
    | {"True", "False", "None"}
)


@dataclass
class ChildField:
    """A property of a node type that holds child nodes."""

    field: str
    at: str
    """The property's pointer."""
    targets: list[str]
    """The node types (pointers) its children may be."""
    shape: str
    """'many' (an array of nodes), 'one' (one node) or 'map' (an object of nodes)."""


@dataclass
class NodeType:
    where: str
    schema: dict[str, Any]
    children: dict[str, ChildField] = field(default_factory=dict)


@dataclass
class Hierarchy:
    root: str
    types: dict[str, NodeType]
    """Node types by pointer, in the order the walk from the root finds them."""
    fields: list[str]
    """The children fields of every node type, in the order they were found."""


class TreeGenerator:
    """dfs/bfs over a hierarchy, one visit case per node type."""

    name = "tree"

    def score(self, description: Description) -> float:
        return flows.score(description, PATTERNS, SCORE, is_hierarchy)

    def generate(self, description: Description) -> dict[str, Any]:
        schema = flows.schema_of(description, "a draft 2020-12 JSON Schema of a hierarchy")
        pattern = schema.root_meta.get("pattern", "dfs")
        flows.check_root_keys(schema, pattern, self.name)
        hierarchy = analyse(schema)
        order = schema.root_meta.get("order", "post")
        names = flows.unique_names(
            flows.unit_slug(flows.type_name(schema, where), "node") for where in hierarchy.types
        )
        used: set[tuple[str, str]] = set()
        units: list[dict[str, Any]] = []
        for (where, _), name in zip(hierarchy.types.items(), names, strict=True):
            run = flows.user_run(schema, where, flows.ITERATING)
            if run is not None:
                used.add((where, "run"))
            else:
                extra = ["--children", ",".join(hierarchy.fields), "--path", "{{ path }}"]
                if order == "pre":
                    extra.append("--no-subtree")
                run = flows.validator_run(description, where, extra)
            units.append({"name": name, "run": run})
        flows.check_runs_used(schema, used, self.name, "it runs the node types of the hierarchy")
        visit: dict[str, Any]
        if len(units) == 1:
            visit = units[0]
        else:
            tests = distinguish(schema, hierarchy)
            visit = {
                "cases": [
                    {"when": tests[where], "unit": unit}
                    for where, unit in zip(hierarchy.types, units, strict=True)
                ]
            }
        section = flows.section_frame(schema, "walk", pattern)
        section["order"] = order
        flows.max_active(section, schema)
        section["over"] = {"input": flows.DATA, "children": list(hierarchy.fields)}
        section["visit"] = visit
        return flows.flow_document(schema, description, self.name, section)


def root_type(schema: Schema) -> str | None:
    where = schema.deref("")
    if where is None or not is_object_type(schema.at(where)):
        return None
    return where


def is_hierarchy(schema: Schema) -> bool:
    """Whether the root type names node types through its properties (a cheap look, no checks)."""
    root = root_type(schema)
    return root is not None and bool(children_of(schema, root))


def children_of(schema: Schema, where: str) -> dict[str, ChildField]:
    found: dict[str, ChildField] = {}
    properties = schema.at(where).get("properties")
    if not isinstance(properties, dict):
        return found
    for name in properties:
        at = child(where, "properties", name)
        if at in schema.nodes:
            child_field = _child_field(schema, name, at)
            if child_field is not None:
                found[name] = child_field
    return found


def _child_field(schema: Schema, name: str, at: str) -> ChildField | None:
    direct = _node_types(schema, at)
    if direct:
        return ChildField(name, at, direct, "one")
    resolved = schema.deref(at)
    if resolved is None:
        return None
    sub = schema.at(resolved)
    if is_array_type(sub) and isinstance(sub.get("items"), dict):
        many = _node_types(schema, child(resolved, "items"))
        if many:
            return ChildField(name, at, many, "many")
    if isinstance(sub.get("additionalProperties"), dict):
        mapped = _node_types(schema, child(resolved, "additionalProperties"))
        if mapped:
            return ChildField(name, at, mapped, "map")
    return None


def _node_types(schema: Schema, where: str) -> list[str]:
    """The node types the subschema at `where` names: a `$ref` to an object type, or a
    `oneOf`/`anyOf` whose every option is one; [] otherwise."""
    if where in schema.refs:
        target = schema.deref(where)
        if target is not None and is_object_type(schema.at(target)):
            return [target]
        return []
    sub = schema.nodes.get(where, {})
    for key in ("oneOf", "anyOf"):
        options = sub.get(key)
        if isinstance(options, list) and options:
            found: list[str] = []
            for i in range(len(options)):
                named = _node_types(schema, child(where, key, i))
                if not named:
                    return []
                found.extend(t for t in named if t not in found)
            return found
    return []


def analyse(schema: Schema) -> Hierarchy:
    """The hierarchy below the root type; a schema that is not one, or whose children fields
    the walk cannot follow, is a `UserError`."""
    root = root_type(schema)
    if root is None:
        raise schema.error("", "a tree needs an object type at the root (the top node's type)")
    types: dict[str, NodeType] = {}
    queue = [root]
    while queue:
        where = queue.pop(0)
        if where in types:
            continue
        node = NodeType(where, schema.at(where), children_of(schema, where))
        types[where] = node
        for child_field in node.children.values():
            queue.extend(t for t in child_field.targets if t not in types)
    fields: list[str] = []
    faults = []
    for node in types.values():
        for child_field in node.children.values():
            if child_field.shape == "map":
                faults.append(
                    schema.fault(
                        child_field.at,
                        f"'{child_field.field}' holds child nodes in an object keyed by name; "
                        "a tree walk reads children from an array or one object",
                    )
                )
            if child_field.field not in fields:
                fields.append(child_field.field)
    if not fields:
        raise schema.error(
            root, "not a hierarchy: no property of the root type names a node type through $ref"
        )
    for node in types.values():
        properties = node.schema.get("properties", {})
        for name in fields:
            if name in properties and name not in node.children:
                faults.append(
                    schema.fault(
                        child(node.where, "properties", name),
                        f"'{name}' holds child nodes in other node types but plain data here; "
                        "the walk descends into the same fields at every node",
                    )
                )
    if faults:
        raise UserError(faults)
    return Hierarchy(root, types, fields)


def distinguish(schema: Schema, hierarchy: Hierarchy) -> dict[str, str]:
    """A `when` expression per node type that holds for its nodes only: a discriminator
    property with a constant value, else the depth, else a required property of its own."""
    for strategy in (_by_discriminator, _by_depth, _by_required):
        tests = strategy(schema, hierarchy)
        if tests is not None:
            return tests
    names = ", ".join(flows.type_name(schema, where) for where in hierarchy.types)
    raise schema.error(
        hierarchy.root,
        f"the node types ({names}) cannot be told apart at run time: give each a required "
        "property with a const value (e.g. kind), or a required property no other type has, "
        "or keep each type at a depth of its own",
    )


def _by_discriminator(schema: Schema, hierarchy: Hierarchy) -> dict[str, str] | None:
    nodes = list(hierarchy.types.values())
    for name in nodes[0].schema.get("properties", {}):
        if name.startswith("_"):
            continue  # the sandbox refuses names that start with '_'
        values: list[Any] = []
        for node in nodes:
            value = _constant(schema, node, name)
            if value is None:
                break
            values.append(value)
        else:
            if len({json.dumps(v) for v in values}) == len(values):
                return {
                    node.where: f"{_access(name)} == {_literal(value)}"
                    for node, value in zip(nodes, values, strict=True)
                }
    return None


def _constant(schema: Schema, node: NodeType, name: str) -> str | int | None:
    """The one value a required property of the node type may hold (const, or a one-value
    enum), when it is a string or an integer."""
    if name not in node.schema.get("required", []):
        return None
    where = schema.deref(child(node.where, "properties", name))
    sub = schema.nodes.get(where, {}) if where is not None else {}
    if "const" in sub:
        value = sub["const"]
    elif isinstance(sub.get("enum"), list) and len(sub["enum"]) == 1:
        value = sub["enum"][0]
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return value


def _by_depth(schema: Schema, hierarchy: Hierarchy) -> dict[str, str] | None:
    limit = len(hierarchy.types)
    depths: dict[str, set[int]] = {where: set() for where in hierarchy.types}
    stack = [(hierarchy.root, 0)]
    seen: set[tuple[str, int]] = set()
    while stack:
        where, depth = stack.pop()
        if (where, depth) in seen or depth > limit:
            continue
        seen.add((where, depth))
        depths[where].add(depth)
        for child_field in hierarchy.types[where].children.values():
            stack.extend((target, depth + 1) for target in child_field.targets)
    if any(len(found) != 1 for found in depths.values()):
        return None
    single = {where: next(iter(found)) for where, found in depths.items()}
    if len(set(single.values())) != len(single):
        return None
    return {where: f"depth == {depth}" for where, depth in single.items()}


def _by_required(schema: Schema, hierarchy: Hierarchy) -> dict[str, str] | None:
    tests: dict[str, str] = {}
    for node in hierarchy.types.values():
        others: set[str] = set()
        for other in hierarchy.types.values():
            if other is not node:
                others.update(other.schema.get("properties", {}))
                others.update(other.schema.get("required", []))
        own = [name for name in node.schema.get("required", []) if name not in others]
        if not own:
            return None
        tests[node.where] = f"{_literal(own[0])} in node"
    return tests


def _access(name: str) -> str:
    """A Jinja expression for the property `name` of `node`."""
    if (
        re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)
        and name not in JINJA_WORDS
        and not hasattr(dict, name)
    ):
        return f"node.{name}"
    return f"node[{_literal(name)}]"


def _literal(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
