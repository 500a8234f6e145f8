"""The document generator: a document whose top node holds entries keyed by name that a walk
does not take as nodes (a map whose entries may be arrays or anything, or one whose entries
`x-meta.entries` makes units of their own: a CI workflow's `jobs`), or holds nothing a walk
can follow. Maps whose every entry is a node are walked by the tree walk itself (tree.py).

The flow is a `dag` section named `document`:

- the top node: the tree walk when the schema is a hierarchy (see tree.py), else one step that
  checks the whole document (the root's `x-meta.run`, else the built-in validator);
- per such map on the top node: a `fanout` over the entries (`over.path: /jobs`), one unit
  per entry: the entry type's `x-meta.run`, else the built-in validator (entry and everything
  below it).

`x-meta.entries` on the map's property (inline, or from an overlay) says more:
`{dependsOn: needs}` makes the fanout run its entries as a dag (`over.dependsOn`), each entry
waiting for the entries its `needs` field names (a name or a list); `{each: steps}` runs the
items of each entry's `steps` in order in one micro section (one pod). All of it is read from
the data when the flow runs, so one flow runs any document of the schema.

Scores 30.5 when the top node holds such entries (above tree's 30: a walk alone would skip
them), 5 when the root is an object type that nothing else takes (a flow that checks the
document).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import meta.builder as mb
from meta.errors import pointer
from meta.flow.files import display_path
from meta.hookspecs import Description
from meta.plan.inputs import read_json

from . import flows, seen
from .schema_model import Schema, child, load
from .structure import MAP_KEYWORDS, MapField, properties_of, structure, validates
from .tree import is_hierarchy, walk_section

PATTERN = "dag"
WITH_ENTRIES = 30.5
ONLY_THE_DOCUMENT = 5.0
DATA_SUFFIXES = (".data.json", ".data.yaml", ".data.yml")


class DocumentGenerator:
    """A top node and its maps of named entries -> a dag of a walk (or a check) and fan-outs."""

    name = "document"

    def score(self, description: Description) -> float:
        schema = load(description)
        if schema is None or "pattern" in schema.root_meta or _decline(schema) is not None:
            return 0.0
        return WITH_ENTRIES if own_maps(schema) else ONLY_THE_DOCUMENT

    def explain(self, description: Description) -> tuple[list[str], str]:
        return seen.explain(description, (), _decline, _plan)

    def generate(self, description: Description) -> dict[str, Any]:
        schema = flows.schema_of(description, "a JSON Schema of an object")
        flows.check_root_keys(schema, PATTERN, self.name)
        used: set[tuple[str, str]] = set()
        maps = _fanned_out(schema, description)
        units: list[mb.Unit] = [_top(schema, description, maps, used)]
        for found in maps:
            units.append(_entries(schema, description, found, used))
        names = flows.unique_names([*(unit.name for unit in units), "verdict"])
        flows.check_runs_used(
            schema, used, self.name, "it runs the top node and the entries of its maps"
        )
        parts = [replace(unit, name=name) for unit, name in zip(units, names[:-1], strict=True)]
        if len(parts) > 1 and not any(kind == "run" for _, kind in used):
            # Only the validator's reports: one verdict on the whole document, the flow's result.
            verdict = flows.summary_run("document")
            parts.append(verdict.step(names[-1], depends_on=names[:-1]))
        section = mb.dag("document", *parts, **flows.frame(schema))
        return flows.flow_document(schema, description, self.name, section)


def own_maps(schema: Schema) -> list[MapField]:
    """The maps of entries held by the top node (by one of the root's object types) whose
    entries are units of their own: those with `x-meta.entries`, and those the walk does not
    take (their entries may be other than nodes)."""
    found = structure(schema)
    by_field: dict[str, MapField] = {}
    for entry in found.maps:
        walked = entry.field in found.fields and _hint(schema, entry) is None
        if entry.owner in found.roots and not walked:
            by_field.setdefault(entry.field, entry)
    return list(by_field.values())


def _left(schema: Schema) -> frozenset[str]:
    """The fields the walk of the top node leaves to units of their own (x-meta.entries)."""
    return frozenset(m.field for m in own_maps(schema) if _hint(schema, m) is not None)


def _fanned_out(schema: Schema, description: Description) -> list[MapField]:
    """The maps that get a unit per entry: with x-meta.entries, or entries the validator checks
    (its fan-out keeps misfits: a document without the map has none), always; else those the
    data holds when the flow is generated for given data, or those the top node requires (a
    fan-out of a step of the user's over a place the data lacks is a fault)."""
    data = _given_data(schema, description)
    required: set[str] = set()
    for root in structure(schema).roots:
        listed = schema.at(root).get("required", [])
        required.update(name for name in listed if isinstance(name, str))
    chosen = []
    for found in own_maps(schema):
        if _hint(schema, found) is not None or validates(schema, found.entries):
            chosen.append(found)
        elif data is not None:
            if isinstance(data[0], dict) and isinstance(data[0].get(found.field), dict):
                chosen.append(found)
        elif found.field in required:
            chosen.append(found)
    return chosen


def _decline(schema: Schema) -> str | None:
    if not structure(schema).roots:
        return "the root is not an object type"
    return None


def _plan(schema: Schema) -> str:
    maps = own_maps(schema)
    if not maps:
        return "a flow that checks the whole document (nothing below the top node to walk)"
    return f"a dag: the top node, and a unit per entry of {', '.join(m.field for m in maps)}"


def _top(
    schema: Schema, description: Description, maps: list[MapField], used: set[tuple[str, str]]
) -> mb.Unit:
    left = _left(schema)
    # The fanned-out maps' entries are their units' to check; the top node checks the maps'
    # own keywords (their type, size, key names) once.
    fanned_out = [pointer([m.field]) for m in maps]
    if is_hierarchy(schema, left):
        section, walked = walk_section(schema, description, left, fanned_out)
        used.update(walked)
        return section
    found = structure(schema)
    owner = found.roots[0] if len(found.roots) == 1 else ""
    for where in dict.fromkeys(("", owner)):
        run = flows.user_run(schema, where, flows.TOP_LEVEL)
        if run is not None:
            used.add((where, "run"))
            return run.step("top")
    extra = [
        flows.option("type", "top"),
        *(flows.option("fanned-out", where) for where in fanned_out),
        flows.option("data", "{{ inputs.data }}", template=True),
        flows.option("at", ""),
        "--no-subtree",
    ]
    return flows.validator_run(description, "", extra).step("top")


def _hint(schema: Schema, found: MapField) -> tuple[str, dict[str, Any]] | None:
    for where in dict.fromkeys((found.at, schema.deref(found.at) or found.at)):
        hint = schema.x_meta.get(where, {}).get("entries")
        if isinstance(hint, dict):
            return where, hint
    return None


def _entry_run(
    schema: Schema, found: MapField, used: set[tuple[str, str]], available: frozenset[str]
) -> flows.Run | None:
    for where in found.entries:
        run = flows.user_run(schema, where, available)
        if run is not None:
            used.add((where, "run"))
            return run
    return None


def _entries(
    schema: Schema, description: Description, found: MapField, used: set[tuple[str, str]]
) -> mb.Section:
    """A fanout over the map's entries, read from the data when the flow runs: a unit per
    entry (its key in the unit's id), the entry type's run or the validator; with
    `x-meta.entries`, a dag through `dependsOn` and each entry's `each` items in order."""
    hint = _hint(schema, found)
    entries_hint: dict[str, Any] = {}
    at = ""
    if hint is not None:
        used.add((hint[0], "entries"))
        at, entries_hint = child(hint[0], "x-meta", "entries"), hint[1]
    name = _entry_name(schema, found)
    run = _entry_run(schema, found, used, flows.ITERATING)
    each = entries_hint.get("each")
    only_validates = run is None
    if run is None:
        # An entry is held to every schema its key selects (a `properties` entry, each pattern
        # it matches, else additionalProperties), as jsonschema holds it: the step checks it as
        # that entry of the map, keyed by the end of its path.
        run = _entry_check(description, found, ["--no-subtree"])
    step = run.step(name)
    visit: mb.Visit = step
    if each:
        items = _entry_field(schema, found, each, child(at, "each"), array=True)
        # The entry itself is checked too, after its items (their verdicts added to its own),
        # but for the items' field, whose own keywords (`minItems`) only it checks.
        gather = (
            _entry_check(
                description,
                found,
                [flows.option("fanned-out", flows.node_path(pointer([each])), template=True)],
            )
            if only_validates
            else None
        )
        steps = _each_section(schema, description, name, each, items, used, gather)
        # Only an entry holding an array there runs its items; any other checks it whole.
        held = f"node[{flows.literal(each)}]"
        holds_items = (
            f"node is mapping and {flows.literal(each)} in node and {held} is iterable"
            f" and {held} is not string and {held} is not mapping"
        )
        visit = [mb.case(holds_items, steps), mb.case("true", step)]
    depends = entries_hint.get("dependsOn")
    if depends:
        _entry_field(schema, found, depends, child(at, "dependsOn"), array=False)
    return mb.fanout(
        flows.unit_slug(found.field, "entries"),
        over=flows.DATA,
        path=pointer([found.field]),
        depends_on_field=depends or None,
        # The top node's check reports a map that is not one; a missing map has no entries.
        misfits="keep" if only_validates else None,
        visit=visit,
        **flows.frame(schema),
    )


def _entry_check(description: Description, found: MapField, extra: list[str]) -> flows.Run:
    """The built-in validator of one entry of the map, with `extra` options."""
    options = [
        flows.option("entry-of", found.at),
        flows.option("type", found.field),
        flows.option("path", flows.node_path(), template=True),
        *extra,
    ]
    return flows.validator_run(description, [], options)


def _entry_name(schema: Schema, found: MapField) -> str:
    """The entries' type name when they have one named type, else the map's name made singular
    (`jobs` -> `job`); the unit's id carries each entry's key."""
    parent = found.entries[0].split("/")[-2:-1] if len(found.entries) == 1 else []
    if parent and parent[0] not in MAP_KEYWORDS:
        return flows.unit_slug(flows.type_name(schema, found.entries[0]), "entry")
    return flows.unit_slug(found.field.removesuffix("s") or found.field, "entry")


def _entry_field(schema: Schema, found: MapField, name: str, at: str, *, array: bool) -> list[str]:
    """The keys of the schema of the entries' field `name` (of its `items` when `array`):
    where it is written, then what it names (the validator checks against the last); a fault
    at `at` when no entry type declares it."""
    for entry in found.entries:
        for declared in properties_of(schema, entry).get(name, []):
            target = schema.deref(declared)
            if target is None:
                continue
            inner = child(target, "items") if array else target
            if inner in schema.nodes:
                return list(dict.fromkeys((inner, schema.deref(inner) or inner)))
    kind = "array field" if array else "field"
    raise schema.error(at, f"the entries have no {kind} '{name}'")


def _each_section(
    schema: Schema,
    description: Description,
    name: str,
    each: str,
    items: list[str],
    used: set[tuple[str, str]],
    gather: flows.Run | None,
) -> mb.Section:
    """A micro section running the items of the entry's field `each` in order (one pod), then
    `gather` (the entry's own check), if any."""
    run = None
    for where in items:
        run = flows.user_run(schema, where, flows.ITERATING)
        if run is not None:
            used.add((where, "run"))
            break
    if run is None:
        extra = [
            flows.option("type", each),
            flows.option("path", flows.node_path(), template=True),
            "--no-subtree",
        ]
        run = flows.validator_run(description, items[-1], extra)
    item, check = flows.unique_names(
        [flows.unit_slug(flows.type_name(schema, items[-1]), "item"), "check"]
    )
    return mb.fanout(
        name,
        over=None,
        path=pointer([each]),
        visit=run.step(item),
        gather=gather.step(check) if gather is not None else None,
        scope="micro",
        max_active=1,
    )


def _given_data(schema: Schema, description: Description) -> tuple[Any, str] | None:
    """The data the flow is generated for (`--data`, else NAME.data.json/.yaml beside the
    schema) and its file's name; None when there is none. Read once."""
    if "data" not in schema.memo:
        path = description.data
        if path is None:
            path = next(
                (
                    candidate
                    for suffix in DATA_SUFFIXES
                    if (candidate := description.path.parent / f"{schema.stem()}{suffix}").is_file()
                ),
                None,
            )
        given = None if path is None else (read_json(Path(path)), display_path(Path(path)))
        schema.memo["data"] = given
    found: tuple[Any, str] | None = schema.memo["data"]
    return found
