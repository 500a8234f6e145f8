"""The document generator: a document whose top node holds entries keyed by name (a CI
workflow's `jobs`, a compose file's `services`), or holds nothing a walk can follow.

The flow is a `dag` section named `document`:

- the top node: the tree walk when the schema is a hierarchy (see tree.py), else one step that
  checks the whole document (the root's `x-meta.run`, else the built-in validator);
- per map of entries on the top node: a `fanout` over the entries (`over.path: /jobs`), one
  unit per entry, its id carrying the entry's name: the entry type's `x-meta.run`, else the
  built-in validator (entry and everything below it).

`x-meta.entries` on the map's property (inline, or from an overlay) says more:
`{dependsOn: needs}` makes the entries a `dag` in which each entry waits for the entries its
`needs` field names (a name or a list); `{each: steps}` runs the items of each entry's `steps`
in order in one micro section (one pod). Both read the entries from the data when the flow is
generated (`--data`), as a dag's units are fixed.

Scores 30.5 when the top node holds entries (above tree's 30: a walk alone would skip them),
5 when the root is an object type that nothing else takes (a flow that checks the document).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import meta.builder as mb
from meta.errors import Fault, UserError, pointer
from meta.flow.files import display_path
from meta.hookspecs import Description
from meta.plan.inputs import read_json

from . import flows, seen
from .schema_model import Schema, child, load
from .structure import MapField, properties_of, structure
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
        return WITH_ENTRIES if top_maps(schema) else ONLY_THE_DOCUMENT

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
        names = flows.unique_names(unit.name for unit in units)
        flows.check_runs_used(
            schema, used, self.name, "it runs the top node and the entries of its maps"
        )
        section = mb.dag(
            "document",
            *(replace(unit, name=name) for unit, name in zip(units, names, strict=True)),
            **flows.frame(schema),
        )
        return flows.flow_document(schema, description, self.name, section)


def top_maps(schema: Schema) -> list[MapField]:
    """The maps of entries held by the top node (by one of the root's object types)."""
    found = structure(schema)
    by_field: dict[str, MapField] = {}
    for entry in found.maps:
        if entry.owner in found.roots:
            by_field.setdefault(entry.field, entry)
    return list(by_field.values())


def _fanned_out(schema: Schema, description: Description) -> list[MapField]:
    """The maps that get a unit per entry: those the data holds when the flow is generated for
    given data, else those the top node requires (an absent map has no entries to fan out, and
    a fan-out over a place the data lacks is a fault); with x-meta.entries, always."""
    data = _given_data(schema, description)
    required: set[str] = set()
    for root in structure(schema).roots:
        listed = schema.at(root).get("required", [])
        required.update(name for name in listed if isinstance(name, str))
    chosen = []
    for found in top_maps(schema):
        if _hint(schema, found) is not None:
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
    maps = top_maps(schema)
    if not maps:
        return "a flow that checks the whole document (nothing below the top node to walk)"
    return f"a dag: the top node, and a unit per entry of {', '.join(m.field for m in maps)}"


def _top(
    schema: Schema, description: Description, maps: list[MapField], used: set[tuple[str, str]]
) -> mb.Unit:
    if is_hierarchy(schema):
        section, walked = walk_section(schema, description)
        used.update(walked)
        return section
    found = structure(schema)
    owner = found.roots[0] if len(found.roots) == 1 else ""
    for where in dict.fromkeys(("", owner)):
        run = flows.user_run(schema, where, flows.TOP_LEVEL)
        if run is not None:
            used.add((where, "run"))
            return run.step("top")
    children = ",".join(m.field for m in maps)
    extra = ["--type", "top", "--data", "{{ inputs.data }}", "--at", "", "--no-subtree"]
    if children:
        extra[2:2] = ["--children", children]
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
    hint = _hint(schema, found)
    if hint is not None:
        used.add((hint[0], "entries"))
        return _entries_dag(schema, description, found, hint, used)
    run = _entry_run(schema, found, used, flows.ITERATING)
    if run is None:
        path = f"{pointer([found.field])}/{{{{ index }}}}"
        run = flows.validator_run(
            description,
            list(found.entries),
            ["--type", found.field, "--path", path, "--no-subtree"],
        )
    return mb.fanout(
        flows.unit_slug(found.field, "entries"),
        over=flows.DATA,
        path=pointer([found.field]),
        visit=run.step(_entry_name(schema, found)),
        **flows.frame(schema),
    )


def _entry_name(schema: Schema, found: MapField) -> str:
    """The entries' type name when they have one type (the unit's id carries each entry's key)."""
    if len(found.entries) == 1:
        return flows.unit_slug(flows.type_name(schema, found.entries[0]), "entry")
    return "entry"


def _entries_dag(
    schema: Schema,
    description: Description,
    found: MapField,
    hint: tuple[str, dict[str, Any]],
    used: set[tuple[str, str]],
) -> mb.Section:
    where, entries_hint = hint
    at = child(where, "x-meta", "entries")
    data, file = _data(schema, description, at)
    entries = data.get(found.field) if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise UserError(Fault(file, pointer([found.field]), "no entries here to make a dag of"))
    keys = list(entries)
    names = dict(
        zip(keys, flows.unique_names(flows.unit_slug(k, "entry") for k in keys), strict=True)
    )
    depends = entries_hint.get("dependsOn")
    each = entries_hint.get("each")
    item_schema = _each_items(schema, found, each, child(at, "each")) if each else None
    run = _entry_run(schema, found, used, flows.TOP_LEVEL)
    faults: list[Fault] = []
    units: list[mb.Unit] = []
    for key, entry in entries.items():
        base = pointer([found.field, key])
        needs: list[str] = []
        if depends:
            needed = entry.get(depends, []) if isinstance(entry, dict) else []
            needed = [needed] if isinstance(needed, str) else needed
            for i, other in enumerate(needed if isinstance(needed, list) else []):
                if other not in names:
                    faults.append(Fault(file, child(base, depends, i), f"'{other}' names no entry"))
                elif names[other] not in needs:
                    needs.append(names[other])
        items = entry.get(each) if isinstance(entry, dict) and each else None
        if item_schema is not None and isinstance(items, list) and items:
            units.append(
                _each_section(
                    schema, description, names[key], needs, base, each or "", item_schema, used
                )
            )
            continue
        if run is None:
            extra = ["--type", found.field, "--data", "{{ inputs.data }}", "--at", base]
            units.append(
                flows.validator_run(description, list(found.entries), extra).step(
                    names[key], depends_on=needs
                )
            )
        else:
            units.append(run.step(names[key], depends_on=needs))
    if faults:
        raise UserError(faults)
    return mb.dag(flows.unit_slug(found.field, "entries"), *units, **flows.frame(schema))


def _each_items(schema: Schema, found: MapField, each: str, at: str) -> list[str]:
    """The keys of the schema of the items of the entries' field `each`: where `items` is
    written, then what it names (the validator checks against the last)."""
    for entry in found.entries:
        for declared in properties_of(schema, entry).get(each, []):
            target = schema.deref(declared)
            items = child(target, "items") if target is not None else ""
            if items in schema.nodes:
                return list(dict.fromkeys((items, schema.deref(items) or items)))
    raise schema.error(at, f"the entries have no array field '{each}'")


def _each_section(
    schema: Schema,
    description: Description,
    name: str,
    needs: list[str],
    base: str,
    each: str,
    items: list[str],
    used: set[tuple[str, str]],
) -> mb.Section:
    """The micro section (one pod) running the items of one entry's `each` in order."""
    run = None
    for where in items:
        run = flows.user_run(schema, where, flows.ITERATING)
        if run is not None:
            used.add((where, "run"))
            break
    if run is None:
        path = f"{child(base, each)}/{{{{ index }}}}"
        run = flows.validator_run(
            description, items[-1], ["--type", each, "--path", path, "--no-subtree"]
        )
    item = flows.unit_slug(flows.type_name(schema, items[-1]), "item")
    return mb.fanout(
        name,
        over=flows.DATA,
        path=child(base, each),
        visit=run.step(item),
        depends_on=needs,
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


def _data(schema: Schema, description: Description, at: str) -> tuple[Any, str]:
    """The data the flow is generated for; a fault at `at` when there is none."""
    given = _given_data(schema, description)
    if given is None:
        raise schema.error(
            at,
            "x-meta.entries builds the entries' dag from the data: give the data file "
            "(meta generate --data FILE)",
        )
    return given
