"""The tree generator: a schema whose node types hold node types is a hierarchy, walked by a
`dfs` (or `bfs`) section over every children field (see structure.py for how they are found).

The visit tells node types apart at run time: one case per node type when a discriminator, the
depth or a required property of its own tells them apart; otherwise one case for the root and
one per children field (a node's type is the schema of the field that holds it: the field is
the last name in its path), which tells apart any hierarchy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import meta.builder as mb
from meta.hookspecs import Description

from . import flows, seen
from .schema_model import Schema, child
from .structure import Place, Structure, properties_of, structure, validates

PATTERNS = ("dfs", "bfs")
SHAPE = (
    "{{% for f in {fields} if node is mapping and f in node %}}{{{{ ', ' if not loop.first }}}}"
    "{{% set v = node[f] %}}"
    "{{{{ ([f, 'object', v | list] if v is mapping else [f, 'value', v] if v is string or v is "
    "not iterable else [f, 'array', v | length]) | tojson }}}}{{% endfor %}}"
)
"""The size or keys of each children field the node holds (the walk strips them from
META_INPUT), for the validator to check each container's own keywords at the node holding it:
rendered from what the walk holds already, so the data is not read again per node."""
SHAPES_LIMIT = 65536
"""The longest --shapes given on a command line (Linux takes 131,072 bytes an argument)."""
SHAPES = (
    "{{% set big %}}{{% for f in {fields} if node is mapping and f in node %}}"
    "{{% set v = node[f] %}}{{{{ 'x' if ((v | map('length') | sum) + 4 * (v | length) if v is "
    "mapping else v | length if v is string else 0) > {share} else '' }}}}{{% endfor %}}"
    "{{% endset %}}{{% set shapes %}}{{% if not big %}}[" + SHAPE + "]{{% endif %}}{{% endset %}}"
    "{{{{ shapes if not big and shapes | length <= " + str(SHAPES_LIMIT) + " else "
    "{{'data': inputs.data}} | tojson }}}}"
)
"""--shapes, or where the node's keys are too many for a command line (a map of some
thousands of entries), `{"data": FILE}`: the step reads that node whole from the data. Each
field's keys are measured first (against `{share}`: its share of SHAPES_LIMIT), so a map whose
keys would make a text longer than templates may (a megabyte) is never written out; what is
written is measured again (a key's non-ASCII characters are written escaped, longer)."""
VALUE_KEYWORDS = ("uniqueItems", "contains", "enum", "const")
"""A container's own keywords that need its elements' values, not only their number or keys."""
ELEMENT_KEYWORDS = frozenset(
    {"items", "prefixItems", "additionalItems", "unevaluatedItems", "properties"}
    | {"patternProperties", "additionalProperties", "unevaluatedProperties", "$defs"}
    | {"definitions"}
)
SCORE = 30.0
VALIDATORS_AT_ONCE = 4
"""A walk that only validates runs this many units at once unless x-meta.maxActive says (a
walk's own default, 1, is for steps that depend on the order)."""
JINJA_WORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "loop", "self"}
    | {"True", "False", "None"}
)


@dataclass
class NodeType:
    where: str
    schema: dict[str, Any]
    children: dict[str, list[str]] = field(default_factory=dict)
    """Children field -> the node types its children may be."""


@dataclass
class Hierarchy:
    root: str
    types: dict[str, NodeType]
    fields: list[str]


@dataclass
class Case:
    """One visit case: when it applies, the unit's name, the subschemas its nodes are checked
    against, and the node type whose x-meta.run it runs (if it is one type)."""

    when: str
    name: str
    checks: list[str]
    owner: str | None
    entry_of: tuple[str, ...] = ()
    """The schemas of the maps whose entries the case's nodes are (the property of each type
    declaring one): they are checked as entries of one of them, held to what their key selects
    there, not to one of `checks`."""


class TreeGenerator:
    """dfs/bfs over a hierarchy, one visit case per node type (or per children field)."""

    name = "tree"

    def score(self, description: Description) -> float:
        return flows.score(description, PATTERNS, SCORE, is_hierarchy)

    def explain(self, description: Description) -> tuple[list[str], str]:
        return seen.explain(description, PATTERNS, _decline, _plan)

    def generate(self, description: Description) -> dict[str, Any]:
        schema = flows.schema_of(description, "a JSON Schema of a hierarchy")
        pattern = schema.root_meta.get("pattern", "dfs")
        flows.check_root_keys(schema, pattern, self.name)
        section, used = walk_section(schema, description)
        flows.check_runs_used(schema, used, self.name, "it runs the node types of the hierarchy")
        return flows.flow_document(schema, description, self.name, section)


def walk_section(
    schema: Schema,
    description: Description,
    leave: frozenset[str] = frozenset(),
    fanned_out: Sequence[str] = (),
) -> tuple[mb.Section, set[Any]]:
    """The dfs (or bfs) section that walks the hierarchy (but the fields in `leave`), and the
    (pointer, 'run') pairs of the x-meta.run it uses; the validator leaves the entries of the
    maps at the data pointers `fanned_out` to the units that fan out over them."""
    pattern = schema.root_meta.get("pattern", "dfs")
    found = analyse(schema, leave)
    order = schema.root_meta.get("order", "post")
    typed = _typed_cases(schema, found)
    only_validates = validates(schema, found.types)
    if only_validates:
        # Each node checked against the schema of its place, as jsonschema checks it: a node
        # whose `kind` is missing, unknown or another type's is reported where it is.
        by_field = _cases_by_field(schema, found)
        cases = typed if typed is not None and _one_schema(schema, by_field) else by_field
    else:
        cases = typed or _cases_by_field(schema, found)
    names = flows.unique_names(flows.unit_slug(case.name, "node") for case in cases)
    used: set[tuple[str, str]] = set()
    units: list[mb.Step] = []
    maps = [name for name in found.fields if _shapes(found.places[name]) == {"map"}]
    fields = [
        flows.option("entries" if name in maps else "children", name) for name in found.fields
    ]
    others = [flows.option("fanned-out", where) for where in fanned_out]
    node_options = _node_options(schema, found, others)
    for case, name in zip(cases, names, strict=True):
        run = None
        if case.owner is not None:
            run = flows.user_run(schema, case.owner, flows.ITERATING)
        if run is not None and case.owner is not None:
            used.add((case.owner, "run"))
        else:
            extra = [*fields, *node_options]
            if order == "pre":
                extra.append("--no-subtree")
            if len(case.checks) > 1 or case.owner is None:
                extra.insert(0, flows.option("type", name))
            checks = case.checks
            if case.entry_of:
                extra[:0] = [flows.option("entry-of", at) for at in case.entry_of]
                checks = []
            run = flows.validator_run(description, checks, extra)
        units.append(run.step(name))
    visit: mb.Visit
    if len(units) == 1:
        visit = units[0]
    else:
        visit = [mb.case(case.when, unit) for case, unit in zip(cases, units, strict=True)]
        if only_validates:
            # A node the walk takes where the schema holds none (one object in a field of
            # arrays): the node holding it reports the field's type; this adds up what is below.
            visit.append(
                mb.case(
                    "true", _misplaced(order).step(flows.unique_names([*names, "misplaced"])[-1])
                )
            )
    frame = flows.frame(schema)
    if only_validates and "max_active" not in frame:
        # The validator's units check a node each, in any order: side by side, as a fanout's.
        frame["max_active"] = VALIDATORS_AT_ONCE
    walk = mb.bfs if pattern == "bfs" else mb.dfs
    section = walk(
        "walk",
        over=flows.DATA,
        # The fields holding one node or an array of them, and those holding nodes by name.
        children=[name for name in found.fields if name not in maps] or None,
        entries=maps or None,
        order=order,
        # A validator reports data that is not a tree of its types; a flow running the
        # types' own steps stops on it, naming the place.
        misfits="keep" if only_validates else None,
        visit=visit,
        **frame,
    )
    return section, used


def _misplaced(order: str) -> flows.Run:
    """The built-in step for a node no place of the schema holds: no check, its subtree's sum."""
    extra = [flows.option("path", flows.node_path(), template=True)]
    return flows.summary_run("misplaced", extra + (["--no-subtree"] if order == "pre" else []))


def _node_options(schema: Schema, found: Structure, extra: Sequence[str]) -> list[str]:
    """How the validator gets a node and its children containers: from META_INPUT, with the
    containers' sizes and keys (`--shapes`); or, when some container's own keywords need its
    elements' values (`uniqueItems`, `contains`, `enum`, `const`), the node read whole from
    the data (each such node reads the data file)."""
    if any(
        _needs_values(schema, at, set())
        for node in found.types
        for name, declared in properties_of(schema, node).items()
        if name in found.fields
        for at in declared
    ):
        return [
            flows.option("data", "{{ inputs.data }}", template=True),
            flows.option("at", flows.node_path(), template=True),
            *extra,
        ]
    listed = "[" + ", ".join(flows.literal(name) for name in found.fields) + "]"
    return [
        flows.option(
            "shapes",
            SHAPES.format(fields=listed, share=SHAPES_LIMIT // len(found.fields)),
            template=True,
        ),
        flows.option("path", flows.node_path(), template=True),
        *extra,
    ]


def _needs_values(schema: Schema, where: str, seen: set[str]) -> bool:
    """Whether the subschema at `where`, or one applying to the same value (through `$ref`s
    and `allOf`/`anyOf`/`oneOf`/`not`/`if`/`then`/`else`), uses a keyword of VALUE_KEYWORDS."""
    target = schema.deref(where)
    if target is None or target in seen:
        return False
    seen.add(target)
    node = schema.at(target)
    if any(keyword in node for keyword in VALUE_KEYWORDS):
        return True
    inner = [
        child(target, keyword, *([i] if isinstance(value, list) else []))
        for keyword, value in node.items()
        if keyword not in ELEMENT_KEYWORDS and isinstance(value, dict | list)
        for i in range(len(value) if isinstance(value, list) else 1)
    ]
    return any(_needs_values(schema, at, seen) for at in inner if at in schema.nodes)


def _shapes(places: list[Place]) -> set[str]:
    return {place.shape for place in places}


def is_hierarchy(schema: Schema, leave: frozenset[str] = frozenset()) -> bool:
    """Whether the root's node types hold node types through some children field (but those
    in `leave`)."""
    return _decline(schema, leave) is None


def _decline(schema: Schema, leave: frozenset[str] = frozenset()) -> str | None:
    found = structure(schema, leave)
    if not found.roots:
        return "the root is not an object type"
    if not found.only_objects:
        return "the root may be something other than an object, and a walk starts at an object"
    if not found.fields:
        return "no property of the node types holds objects (with properties) or arrays of them"
    return None


def _plan(schema: Schema) -> str:
    found = structure(schema)
    pattern = schema.root_meta.get("pattern", "dfs")
    return (
        f"a {pattern} walk over {len(found.fields)} children fields, {len(found.types)} node types"
    )


def analyse(schema: Schema, leave: frozenset[str] = frozenset()) -> Structure:
    """The schema's structure; one without a hierarchy is a `UserError` saying why."""
    found = structure(schema, leave)
    if not found.roots or not found.only_objects:
        raise schema.error("", "a tree needs an object type at the root (the top node's type)")
    if not found.fields:
        why = "; ".join(f"'{name}': {reason}" for name, reason in found.left_out.items())
        raise schema.error(
            found.roots[0],
            "not a hierarchy: no property of the root type holds objects or arrays of objects"
            + (f" that a walk can follow ({why})" if why else ""),
        )
    return found


def _typed_cases(schema: Schema, found: Structure) -> list[Case] | None:
    """One case per node type when the types can be told apart, else None (then one for the
    root and one per children field: `_cases_by_field`); None too when a map's entries are of
    types their keys select (a node's type is then where it is, not what it holds)."""
    keyed = any(len(m.nodes) > 1 for m in found.maps if m.field in found.places)
    if len(found.roots) != 1:
        return None
    hierarchy = _hierarchy(found)
    if len(hierarchy.types) == 1:
        (where,) = hierarchy.types
        return [Case("", flows.type_name(schema, where), [where], where)]
    # Where the types are told by the data they hold, only a constant the type requires (a
    # `kind`) tells a keyed map's entries as their keys do.
    tests = _by_discriminator(schema, hierarchy) if keyed else distinguish(schema, hierarchy)
    if tests is None:
        return None
    return [
        Case(tests[where], flows.type_name(schema, where), [where], where)
        for where in hierarchy.types
    ]


def _one_schema(schema: Schema, cases: list[Case]) -> bool:
    """Whether every place of the walk holds nodes of one schema (a recursive type's)."""
    return not any(case.entry_of for case in cases) and (
        len({schema.deref(check) for case in cases for check in case.checks}) == 1
    )


def _hierarchy(found: Structure) -> Hierarchy:
    types: dict[str, NodeType] = {}
    for where, node in found.types.items():
        types[where] = NodeType(where, node)
    for name, places in found.places.items():
        for place in places:
            if place.owner in types:
                listed = types[place.owner].children.setdefault(name, [])
                listed.extend(t for t in place.targets if t not in listed)
    return Hierarchy(found.roots[0], types, list(found.fields))


def _cases_by_field(schema: Schema, found: Structure) -> list[Case]:
    root_owner = found.roots[0] if len(found.roots) == 1 else None
    root_name = flows.type_name(schema, root_owner) if root_owner is not None else "root"
    cases = [Case("depth == 0", root_name, [""], root_owner)]
    # Entries first: an entry's key may be the name of a field holding one node, whose test
    # (the last name in the path) would take the entry too.
    by_shape = sorted(found.places.items(), key=lambda named: _shapes(named[1]) != {"map"})
    for name, places in by_shape:
        targets = list(dict.fromkeys(t for place in places for t in place.targets))
        checks = list(dict.fromkeys(place.element for place in places))
        owner = targets[0] if len(targets) == 1 else None
        label = flows.type_name(schema, owner) if owner is not None else name
        if owner is None:
            _no_runs(schema, name, targets)
        holders = [m.at for m in found.maps if m.field == name and m.nodes]
        entry_of = tuple(dict.fromkeys(holders)) if _shapes(places) == {"map"} else ()
        cases.append(Case(_field_test(name, places), label, checks, owner, entry_of))
    return cases


def _no_runs(schema: Schema, name: str, targets: list[str]) -> None:
    with_run = [t for t in targets if "run" in schema.x_meta.get(t, {})]
    if with_run:
        raise schema.error(
            child(with_run[0], "x-meta", "run"),
            f"the children in '{name}' may be any of several node types, which the walk cannot "
            "tell apart: give them a required property with a const value (e.g. kind)",
        )


def _field_test(name: str, places: list[Place]) -> str:
    """A `when` that holds for the nodes a children field holds: the field is the last name
    in the node's path (before the index, for arrays; before the key, for entries)."""
    shapes = _shapes(places)
    quoted = flows.literal(name)
    if shapes == {"map"}:
        return f"depth > 0 and path.split('/')[-2] == {quoted}"
    tests = []
    if "one" in shapes:
        tests.append(f"path.split('/')[-1] == {quoted}")
    if "many" in shapes:
        tests.append(f"(path.split('/')[-2] == {quoted} and path.split('/')[-1].isdigit())")
    return (
        f"depth > 0 and {tests[0]}" if len(tests) == 1 else f"depth > 0 and ({' or '.join(tests)})"
    )


def distinguish(schema: Schema, hierarchy: Hierarchy) -> dict[str, str] | None:
    """A `when` expression per node type that holds for its nodes only: a discriminator
    property with a constant value, else the depth, else a required property of its own; None
    when none of them tells the types apart."""
    for strategy in (_by_discriminator, _by_depth, _by_required):
        tests = strategy(schema, hierarchy)
        if tests is not None:
            return tests
    return None


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
                # `is defined` first: a node without the property matches no case (a fault
                # naming the node), rather than failing the template.
                access = _access(name)
                return {
                    node.where: f"{access} is defined and {access} == {flows.literal(value)}"
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
        for targets in hierarchy.types[where].children.values():
            stack.extend((target, depth + 1) for target in targets)
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
        tests[node.where] = f"{flows.literal(own[0])} in node"
    return tests


def _access(name: str) -> str:
    """A Jinja expression for the property `name` of `node`."""
    if (
        re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)
        and name not in JINJA_WORDS
        and not hasattr(dict, name)
    ):
        return f"node.{name}"
    return f"node[{flows.literal(name)}]"
