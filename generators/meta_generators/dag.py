"""The dag generator: `$defs` entries whose `x-meta.dependsOn` name other entries become the units
of a `dag` section, one unit per entry, each running after the entries it depends on.

The units of a dag are the `$defs` entries that carry `x-meta` (a `run`, a `dependsOn`) or that a
`dependsOn` names. An entry without `run` gets the built-in validator, which checks the data the
entry describes: the first property (from the root, through object properties) that holds it,
one value or an array of them.
"""

from __future__ import annotations

from typing import Any

import meta.builder as mb
from meta.errors import Fault, UserError
from meta.hookspecs import Description

from . import flows, seen
from .schema_model import Schema, child, is_array_type, is_object_type

PATTERN = "dag"
SCORE = 31.0
"""Above the tree generator's: a hierarchy whose types say what they depend on is a dag."""


class DagGenerator:
    """`$defs` with `x-meta.dependsOn` -> a dag of units."""

    name = "dag"

    def score(self, description: Description) -> float:
        return flows.score(description, (PATTERN,), SCORE, lambda schema: _decline(schema) is None)

    def explain(self, description: Description) -> tuple[list[str], str]:
        return seen.explain(
            description, (PATTERN,), _decline, lambda _: "a dag of the $defs entries with x-meta"
        )

    def generate(self, description: Description) -> dict[str, Any]:
        schema = flows.schema_of(description)
        flows.check_root_keys(schema, PATTERN, self.name)
        defs = dict(schema.defs())
        depends = _dependencies(schema, defs)
        named = {name for deps in depends.values() for name in deps}
        members = [
            name for name, where in defs.items() if bool(schema.x_meta.get(where)) or name in named
        ]
        if not members:
            raise schema.error(
                "",
                "a dag needs $defs entries with x-meta (run, dependsOn): none has any",
            )
        _check_acyclic(schema, defs, depends, members)
        unique = flows.unique_names([*(flows.unit_slug(n, "stage") for n in members), "verdict"])
        names = dict(zip(members, unique[:-1], strict=True))
        used: set[tuple[str, str]] = set()
        units = []
        checks = []
        for name in members:
            where = defs[name]
            if depends.get(name):
                used.add((where, "dependsOn"))
            feeds = [names[dep] for dep in depends.get(name, [])]
            run = flows.user_run(schema, where, flows.TOP_LEVEL, feeds)
            if run is not None:
                used.add((where, "run"))
            else:
                run = _validator(schema, description, name, where)
                checks.append(names[name])
            units.append(run.step(names[name], depends_on=feeds))
        flows.check_runs_used(schema, used, self.name, "it runs the $defs entries")
        if checks and len(units) > 1:
            # The validator's stages, added up: the flow's result says whether the data is
            # valid, beside what the stages that no other stage reads give (revenue), which
            # alone would hide an invalid stage whose dependants ran on regardless.
            units.append(flows.summary_run("data").step(unique[-1], depends_on=checks))
        section = mb.dag("stages", *units, **flows.frame(schema))
        return flows.flow_document(schema, description, self.name, section)


def _dependencies(schema: Schema, defs: dict[str, str]) -> dict[str, list[str]]:
    depends: dict[str, list[str]] = {}
    faults: list[Fault] = []
    for name, where in defs.items():
        listed = schema.x_meta.get(where, {}).get("dependsOn", [])
        for i, dependency in enumerate(listed):
            if dependency not in defs:
                known = ", ".join(defs) or "none"
                faults.append(
                    schema.fault(
                        child(where, "x-meta", "dependsOn", i),
                        f"'{dependency}' names no $defs entry (entries: {known})",
                    )
                )
        depends[name] = list(listed)
    if faults:
        raise UserError(faults)
    return depends


def _check_acyclic(
    schema: Schema, defs: dict[str, str], depends: dict[str, list[str]], members: list[str]
) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dependency in depends.get(name, []):
            if state.get(dependency) == 1:
                return [*path[path.index(dependency) :], dependency]
            if dependency not in state:
                found = visit(dependency)
                if found is not None:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in members:
        if name not in state:
            cycle = visit(name)
            if cycle is not None:
                raise schema.error(
                    child(defs[cycle[0]], "x-meta", "dependsOn"),
                    f"dependency cycle: {' -> '.join(cycle)}",
                )


def _validator(schema: Schema, description: Description, name: str, where: str) -> flows.Run:
    place = _place(schema, where)
    if place is None:
        raise schema.error(
            child(where, "x-meta") if where in schema.x_meta else where,
            f"$defs entry '{name}' has no x-meta.run, and no property from the root holds its "
            "data for the built-in validator to check: give it a run",
        )
    at, many = place
    extra = [
        flows.option("data", "{{ inputs.data }}", template=True),
        flows.option("at", at),
        "--no-subtree",
    ]
    if many:
        extra.insert(0, "--each")
    return flows.validator_run(description, where, extra)


def _place(schema: Schema, target: str) -> tuple[str, bool] | None:
    """Where the data of the type at `target` sits: the JSON pointer (into the data) of the first
    property, breadth first from the root through object properties, that holds one value of
    it (False) or an array of them (True)."""
    root = schema.deref("")
    if root is None:
        return None
    queue: list[tuple[str, str]] = [(root, "")]
    seen = {root}
    while queue:
        where, data = queue.pop(0)
        properties = schema.at(where).get("properties")
        if not isinstance(properties, dict):
            continue
        for name in properties:
            at = child(where, "properties", name)
            resolved = schema.deref(at) if at in schema.nodes else None
            if resolved is None:
                continue
            if resolved == target:
                return child(data, name), False
            sub = schema.at(resolved)
            items = child(resolved, "items")
            if is_array_type(sub) and items in schema.nodes and schema.deref(items) == target:
                return child(data, name), True
            if is_object_type(sub) and resolved not in seen:
                seen.add(resolved)
                queue.append((resolved, child(data, name)))
    return None


def _decline(schema: Schema) -> str | None:
    if any(schema.x_meta.get(where, {}).get("dependsOn") for _, where in schema.defs()):
        return None
    return "no $defs entry has x-meta.dependsOn"
