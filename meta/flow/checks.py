"""Checks the schema cannot express: names, dependencies, scopes, inputs and templates."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from graphlib import CycleError, TopologicalSorter

from meta.errors import Fault
from meta.flow.inputschema import schema_problem, value_faults
from meta.flow.model import (
    Cases,
    Flow,
    FlowRef,
    Generate,
    Origin,
    Section,
    Step,
    Unit,
    ValueInput,
)
from meta.flow.templates import (
    FLOW_VARIABLES,
    ITERATION_VARIABLES,
    UNIT_VARIABLES,
    TemplateProblem,
    check_condition,
    check_template,
    is_template,
    upstream_names,
)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""A unit name, matched whole (`fullmatch`: `$` would let a trailing newline through)."""
MAX_NAME_LENGTH = 100
"""A unit name is one name in the store and in every unit id below it."""
FINALLY = "finally"
"""The id segment of a section's `finally` units (`SECTION/finally/NAME`): no unit takes it as
its name, nor an entry's key its place in an id, or two units would share one id."""


def name_problem(name: str) -> str | None:
    """Why `name` (written or rendered) is not a unit name, or None."""
    if len(name) > MAX_NAME_LENGTH:
        return f"unit name {name[:20]!r}... is longer than {MAX_NAME_LENGTH} characters"
    if not NAME.fullmatch(name):
        return (
            f"unit name {name!r} must start with a letter or digit and hold only "
            "letters, digits, '_', '.' and '-'"
        )
    if name == FINALLY:
        return (
            f"unit name {name!r} is reserved: the ids of a section's finally units are "
            "SECTION/finally/NAME"
        )
    return None


OWN_PREFIX = "META_"
"""What the variables meta gives every step (`META_INPUT`, `META_OUTPUT`...) start with."""

ITERATING = frozenset({"fanout", "dfs", "bfs", "cycle"})


FINALLY_VARIABLES = frozenset({"upstream", "failures"})
"""What a `finally` unit sees besides its section's variables: every unit's state, and every
failure."""


def semantic_faults(flow: Flow) -> list[Fault]:
    """Every semantic fault in one flow (flowRefs are followed by the planner, not here)."""
    return [
        *_declaration_faults(flow),
        *_unit_faults(flow.root, flow, FLOW_VARIABLES | UNIT_VARIABLES, in_micro=False),
        *_final_faults(
            flow.final,
            "the flow",
            flow,
            FLOW_VARIABLES | UNIT_VARIABLES,
            in_micro=False,
            feeds=_root_feeds(flow),
        ),
    ]


def _declaration_faults(flow: Flow) -> Iterator[Fault]:
    """Each input's schema is one a value can be checked against, and its inline default
    holds to it (a file default is read, and checked, when the flow is planned)."""
    file = flow.root.origin.file
    for name, declared in flow.declarations.items():
        where = f"/spec/inputs/{name}"
        if declared.schema is None:
            continue
        problem = schema_problem(declared.schema)
        if problem is not None:
            yield Fault(file, f"{where}/schema", f"input '{name}': {problem}")
        elif isinstance(declared.default, ValueInput):
            yield from value_faults(
                name, declared.schema, declared.default.value, file, f"{where}/value"
            )


def _final_faults(
    units: Iterable[Unit],
    owner: str,
    flow: Flow,
    available: frozenset[str],
    *,
    in_micro: bool,
    feeds: frozenset[str] | None,
) -> Iterator[Fault]:
    """`finally` units run one after another: names unique among them, no dependsOn; the units
    they name as producers or in `upstream.NAME` are among those that end before them (`feeds`,
    where they are known before the run)."""
    seen: set[str] = set()
    for unit in units:
        yield from _fed_faults(unit, feeds)
        if unit.name in seen:
            yield _fault(
                unit.origin.at("name"), f"duplicate unit name '{unit.name}' in finally of {owner}"
            )
        seen.add(unit.name)
        if unit.depends_on:
            yield _fault(
                unit.origin.at("dependsOn"),
                "dependsOn is only for units of a dag section (finally units run in order)",
            )
        yield from _unit_faults(unit, flow, available | FINALLY_VARIABLES, in_micro=in_micro)


def _fault(origin: Origin, reason: str) -> Fault:
    return Fault(origin.file, origin.pointer, reason)


def _unit_faults(
    unit: Unit,
    flow: Flow,
    available: frozenset[str],
    *,
    in_micro: bool,
    fed: frozenset[str] | None = None,
) -> Iterator[Fault]:
    """`fed`: the units that feed `unit`, when known before the run."""
    yield from _template_faults(unit.origin.at("name"), unit.name, available)
    problem = None if is_template(unit.name) else name_problem(unit.name)
    if problem is not None:
        yield _fault(unit.origin.at("name"), problem)
    if unit.when is not None:
        yield from _template_faults(unit.origin.at("when"), unit.when, available, condition=True)
    if isinstance(unit, Step):
        run = unit.origin.at("run")
        if not unit.run.command[0]:
            yield _fault(run.at("command", 0), "the program to run is an empty string")
        for i, arg in enumerate(unit.run.command):
            yield from _template_faults(run.at("command", i), arg, available)
        if unit.run.image is not None:
            yield from _template_faults(run.at("image"), unit.run.image, available)
        for key in unit.run.env:
            if key.startswith(OWN_PREFIX):
                yield _fault(
                    run.at("env", key),
                    f"{key}: variables named {OWN_PREFIX}* are meta's own, set for every step",
                )
        for key, value in unit.run.literal_env.items():
            yield from _template_faults(run.at("env", key), value, available)
        return
    if isinstance(unit, FlowRef | Generate):
        if in_micro:
            kind = "a flowRef" if isinstance(unit, FlowRef) else "a generate unit"
            yield _fault(
                unit.origin, f"a micro section holds steps and micro sections only, not {kind}"
            )
        if isinstance(unit, Generate):
            yield from _generate_faults(unit, flow)
        return
    yield from _section_faults(unit, flow, available, in_micro=in_micro, fed=fed)


def _generate_faults(unit: Generate, flow: Flow) -> Iterator[Fault]:
    for role, source in unit.sources():
        if source.file is not None and _leaves_its_folder(source.file):
            yield _fault(
                unit.origin.at("generate", role, "file"),
                f"'{source.file}' is read inside the outputs of unit '{source.from_unit}': a "
                "relative path, without '..'",
            )
        if source.input is not None and source.input not in flow.declarations:
            declared = ", ".join(sorted(flow.declarations)) or "none"
            yield _fault(
                unit.origin.at("generate", role, "input"),
                f"no input named '{source.input}' (declared inputs: {declared})",
            )


def _leaves_its_folder(path: str) -> bool:
    return path.startswith("/") or ".." in path.split("/")


def producer_names(unit: Unit) -> Iterator[tuple[Origin, str]]:
    """(where, name) for every sibling a unit names as its producer: a generate unit's
    `fromUnit`, a fanout's `over.result`."""
    if isinstance(unit, Generate):
        for role, source in unit.sources():
            if source.from_unit is not None:
                yield unit.origin.at("generate", role, "fromUnit"), source.from_unit
    elif isinstance(unit, Section) and unit.over is not None and unit.over.result is not None:
        yield unit.origin.at("over", "result"), unit.over.result


def _producers_faults(section: Section, fed: frozenset[str] | None) -> Iterator[Fault]:
    """A producer a unit of a dag or a sequence names must be a unit whose outputs flow into it:
    a sibling it depends on (in a dag) or follows (in a sequence); a dag's unit without
    dependsOn, and a sequence's first, are fed by what feeds the section (`fed`: known, or else
    checked when they run)."""
    if section.pattern not in ("dag", "sequence"):
        return
    needs = "list it in dependsOn" if section.pattern == "dag" else "it must come just before"
    siblings = {unit.name for unit in section.units}
    for unit, own in _unit_feeds(section):
        feeds = own if own is not None else fed
        for origin, name in producer_names(unit):
            if feeds is not None and name in feeds:
                continue
            if own is not None or name in siblings:
                yield _fault(origin, f"'{name}' does not feed '{unit.name}' ({needs})")
            elif fed is not None:
                yield _not_fed(origin, name, unit, fed)
        if feeds is not None and not any(is_template(name) for name in feeds):
            yield from upstream_faults(unit, feeds)


def _unit_feeds(section: Section) -> Iterator[tuple[Unit, frozenset[str] | None]]:
    """Each of the section's `units` (a dag's, a sequence's, a fanin's) and the siblings that
    feed it: those it depends on in a dag, the one it follows in a sequence; None for one fed
    by what feeds the section (a dag's unit without dependsOn, a sequence's first, a fanin's)."""
    units = section.units
    for position, unit in enumerate(units):
        if section.pattern == "dag" and unit.depends_on:
            yield unit, frozenset(unit.depends_on)
        elif section.pattern == "sequence" and position:
            yield unit, frozenset({units[position - 1].name})
        else:
            yield unit, None


def _final_feeds(section: Section) -> frozenset[str] | None:
    """The units that feed a section's finally units, where they are known before the run: a
    dag's or a sequence's units (a fanout's visits are named as they render)."""
    named = [unit.name for unit in section.units]
    fixed = section.pattern in ("dag", "sequence") and not any(map(is_template, named))
    return frozenset(named) if fixed else None


def _root_feeds(flow: Flow) -> frozenset[str] | None:
    """What feeds the flow's finally units: its root."""
    return None if is_template(flow.root.name) else frozenset({flow.root.name})


def fed_faults(flow: Flow, fed: frozenset[str]) -> list[Fault]:
    """What the root of `flow`, and the units inside it fed by what feeds the root, name as
    fed to them, when `fed` feeds the root: nothing, for the flow run; what feeds the flowRef
    that runs it, where that is known (`semantic_faults` cannot tell: it sees the flow alone)."""
    return list(_inheriting(flow.root, fed))


def known_feeds(flow: Flow, fed: frozenset[str] | None) -> dict[int, frozenset[str]]:
    """The units that feed each unit of `flow` (by the unit's `id()`), where they are known
    before the run, when `fed` feeds its root (None: not known)."""
    known: dict[int, frozenset[str]] = {}

    def walk(unit: Unit, feeds: frozenset[str] | None) -> None:
        if feeds is not None:
            known[id(unit)] = feeds
        if isinstance(unit, Section):
            for inner, own in _unit_feeds(unit):
                walk(inner, own if own is not None else feeds)
            for final in unit.final:
                walk(final, _final_feeds(unit))

    walk(flow.root, fed)
    for final in flow.final:
        walk(final, _root_feeds(flow))
    return known


def _inheriting(unit: Unit, fed: frozenset[str]) -> Iterator[Fault]:
    yield from _fed_faults(unit, fed)
    if isinstance(unit, Section):
        for inner, own in _unit_feeds(unit):
            if own is None:
                yield from _inheriting(inner, fed)


def _fed_faults(unit: Unit, fed: frozenset[str] | None) -> Iterator[Fault]:
    """What `unit` names as fed to it, when what feeds it is known (`fed`)."""
    if fed is None:
        return
    for origin, name in producer_names(unit):
        if name not in fed:
            yield _not_fed(origin, name, unit, fed)
    yield from upstream_faults(unit, fed)


def _not_fed(origin: Origin, name: str, unit: Unit, fed: frozenset[str]) -> Fault:
    those = ", ".join(sorted(fed)) or "none"
    return _fault(
        origin, f"'{name}' is not among the units that feed '{unit.name}' (those are: {those})"
    )


def _own_templates(unit: Unit) -> Iterator[tuple[Origin, str, bool]]:
    """(where, text, is a condition) for the templated fields of the unit itself (not of units
    inside it, which have producers of their own)."""
    if unit.when is not None:
        yield unit.origin.at("when"), unit.when, True
    yield unit.origin.at("name"), unit.name, False
    if isinstance(unit, Step):
        run = unit.origin.at("run")
        for i, arg in enumerate(unit.run.command):
            yield run.at("command", i), arg, False
        if unit.run.image is not None:
            yield run.at("image"), unit.run.image, False
        for key, value in unit.run.env.items():
            if isinstance(value, str):
                yield run.at("env", key), value, False


def upstream_faults(unit: Unit, feeds: frozenset[str] | set[str]) -> Iterator[Fault]:
    """`upstream.NAME` must name a unit that feeds this one, where those are known before the
    run (a dag unit's dependsOn, a sequence unit's previous sibling)."""
    for origin, text, condition in _own_templates(unit):
        if not condition and not is_template(text):
            continue
        for name in sorted(upstream_names(text, condition=condition) - feeds):
            yield _fault(
                origin,
                f"upstream.{name}: '{name}' does not feed '{unit.name}' "
                f"(the units that do: {', '.join(sorted(feeds)) or 'none'})",
            )


def _section_faults(
    section: Section,
    flow: Flow,
    available: frozenset[str],
    *,
    in_micro: bool,
    fed: frozenset[str] | None = None,
) -> Iterator[Fault]:
    if in_micro and section.scope == "macro":
        yield _fault(
            section.origin.at("scope"),
            f"macro section '{section.name}' cannot sit inside a micro section "
            "(a micro section holds steps and micro sections only)",
        )
    inner_micro = in_micro or section.scope == "micro"
    if section.pattern == "sequence" and section.max_active not in (None, 1):
        yield _fault(
            section.origin.at("maxActive"),
            "a sequence runs one unit at a time: maxActive must be 1",
        )
    if (
        section.pattern == "cycle"
        and section.max_active is not None
        and section.max_active > len(section.ring)
    ):
        yield _fault(
            section.origin.at("maxActive"),
            "a cycle has at most one live unit per ring member: "
            f"maxActive must be <= {len(section.ring)}",
        )
    over = section.over
    if over is not None and over.input is not None and over.input not in flow.declarations:
        declared = ", ".join(sorted(flow.declarations)) or "none"
        yield _fault(
            section.origin.at("over", "input"),
            f"no input named '{over.input}' (declared inputs: {declared})",
        )
    if over is not None and over.input is None and over.result is None and "node" not in available:
        yield _fault(
            section.origin.at("over"),
            "over needs an input here: only a section inside a visit may leave it out to walk "
            "the visit's node",
        )
    if section.over is not None:
        for i, name in enumerate(section.over.entries):
            if name in section.over.children:
                yield _fault(
                    section.origin.at("over", "entries", i),
                    f"'{name}' is in over.children too: a field holds one object or an array "
                    "of child nodes (children), or an object of named entries (entries)",
                )
    iterating = available | ITERATION_VARIABLES
    yield from _siblings_faults(section.units, section, "units")
    yield from _producers_faults(section, fed)
    yield from _siblings_faults(section.ring, section, "ring")
    for unit, own in _unit_feeds(section):
        feeds = own if own is not None else fed
        yield from _unit_faults(unit, flow, available, in_micro=inner_micro, fed=feeds)
    for unit in section.ring:
        yield from _unit_faults(unit, flow, iterating, in_micro=inner_micro)
    if section.gather is not None:
        yield from _unit_faults(section.gather, flow, available, in_micro=inner_micro)
    if isinstance(section.visit, Cases):
        for case in section.visit.cases:
            yield from _template_faults(
                case.origin.at("when"), case.when, iterating, condition=True
            )
            yield from _unit_faults(case.unit, flow, iterating, in_micro=inner_micro)
    elif section.visit is not None:
        yield from _unit_faults(section.visit, flow, iterating, in_micro=inner_micro)
    yield from _final_faults(
        section.final,
        f"section '{section.name}'",
        flow,
        available,
        in_micro=inner_micro,
        feeds=_final_feeds(section),
    )
    for loose in (section.gather, section.visit):
        if loose is not None and not isinstance(loose, Cases) and loose.depends_on:
            yield _fault(
                loose.origin.at("dependsOn"), "dependsOn is only for units of a dag section"
            )


def _siblings_faults(units: Iterable[Unit], section: Section, field: str) -> Iterator[Fault]:
    units = list(units)
    seen: set[str] = set()
    for unit in units:
        if unit.name in seen:
            yield _fault(
                unit.origin.at("name"),
                f"duplicate unit name '{unit.name}' in {field} of section '{section.name}'",
            )
        seen.add(unit.name)
    dependencies: dict[str, list[str]] = {}
    for unit in units:
        if unit.depends_on and section.pattern != "dag":
            yield _fault(
                unit.origin.at("dependsOn"),
                "dependsOn is only for units of a dag section "
                f"('{section.name}' is a {section.pattern})",
            )
            continue
        dependencies[unit.name] = []
        for i, dependency in enumerate(unit.depends_on):
            if dependency not in seen:
                yield _fault(
                    unit.origin.at("dependsOn", i),
                    f"'{dependency}' names no sibling of '{unit.name}' in section '{section.name}'",
                )
            else:
                dependencies[unit.name].append(dependency)
    try:
        TopologicalSorter(dependencies).prepare()
    except CycleError as cycle:
        names = cycle.args[1]
    else:
        return
    yield _fault(
        section.origin.at(field),
        f"dependency cycle in section '{section.name}': {' -> '.join(names)}",
    )


def _template_faults(
    origin: Origin,
    text: str,
    available: frozenset[str],
    *,
    expression: bool = False,
    condition: bool = False,
) -> Iterator[Fault]:
    if not expression and not condition and not is_template(text):
        return
    try:
        if condition:
            check_condition(text, available)
        else:
            check_template(text, available, expression=expression)
    except TemplateProblem as problem:
        yield _fault(origin, str(problem))
