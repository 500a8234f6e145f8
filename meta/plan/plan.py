"""Compiling a flow file into a plan: flowRefs followed, inputs bound and checked, data loaded.

A plan is what the engine runs. Everything a user can get wrong in files is found here, before
anything runs: faults in any flow file, flowRef cycles, unknown or missing inputs, invalid data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meta.errors import Fault, FlowInvalid, InputFault, UserError, pointer
from meta.flow.checks import fed_faults, known_feeds
from meta.flow.files import display_path
from meta.flow.inputschema import record_faults, value_faults
from meta.flow.model import (
    Cases,
    FileInput,
    Flow,
    FlowRef,
    Input,
    Origin,
    Over,
    Section,
    Step,
    Unit,
    ValueInput,
)
from meta.flow.parse import flow_from_document, load_flow
from meta.flow.reading import kind_problem
from meta.plan.entries import entry_needs
from meta.plan.given import SOURCE, bind
from meta.plan.inputs import is_json_lines, iter_json_lines, read_json, resolve


@dataclass
class Plan:
    """One flow with its inputs bound, and the plans of the flows it references."""

    flow: Flow
    inputs: Mapping[str, Input]
    subplans: dict[Origin, Plan] = field(default_factory=dict)
    documents: dict[Path, Any] = field(default_factory=dict, repr=False)
    declared: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Where each input was given: (file, JSON pointer), or ("--set", "/NAME")."""

    def located(self, name: str) -> tuple[str, str]:
        """Where an input's data is, for faults: the data file and "", or for an inline value
        the flow file and the pointer of that value."""
        spec = self.inputs[name]
        if isinstance(spec, FileInput):
            return display_path(spec.path), ""
        file, where = self.declared.get(name, (display_path(self.flow.source), ""))
        return file, where if file == SOURCE else f"{where}/value"

    def data(self, name: str) -> Any:
        """The JSON value of an input: the file's document (read once; a JSON-lines file's is
        the array of its records, as the cluster is given it) or the inline value."""
        spec = self.inputs[name]
        if isinstance(spec, ValueInput):
            return spec.value
        if spec.path not in self.documents:
            self.documents[spec.path] = (
                list(iter_json_lines(spec.path))
                if is_json_lines(spec.path)
                else read_json(spec.path)
            )
        return self.documents[spec.path]

    def over(self, over: Over) -> Any:
        """The value a section walks: its input, at its JSON pointer (None where the data has
        nothing, for a walk that keeps misfits)."""
        assert over.input is not None, "a section over its visit's node walks no input"
        return resolve_kept(over, self.data(over.input), over.path, *self.located(over.input))

    def records(self, over: Over) -> Iterator[Any]:
        """The records of a stream: a JSON-lines file read lazily, or a JSON array."""
        assert over.input is not None, "a stream always names its input"
        spec = self.inputs[over.input]
        if isinstance(spec, FileInput) and is_json_lines(spec.path):
            return iter_json_lines(spec.path)
        return iter(self.over(over))

    def template_inputs(self) -> dict[str, Any]:
        """What `inputs` means in templates and META_INPUT: file inputs by path, inline by value."""
        return {
            name: str(spec.path) if isinstance(spec, FileInput) else spec.value
            for name, spec in self.inputs.items()
        }

    def subplan(self, ref: FlowRef) -> Plan:
        return self.subplans[ref.origin]

    def reachable(self) -> Iterator[Plan]:
        """This plan and every plan it references, depth first (a flow referenced twice comes
        twice)."""
        pending: list[Plan] = [self]
        while pending:
            current = pending.pop()
            yield current
            pending.extend(current.subplans.values())

    def section_at(self, file: str, pointer: str) -> tuple[Plan, Section]:
        """The section written at `pointer` of `file`, in this plan or one it references, and
        the plan it belongs to."""
        for current in self.reachable():
            for unit in flow_units(current.flow):
                if (
                    isinstance(unit, Section)
                    and unit.origin.pointer == pointer
                    and unit.origin.file == file
                ):
                    return current, unit
        raise UserError(Fault(file, pointer, "no section is written here in this flow"))


def walk_units(unit: Unit | Cases | None) -> Iterator[Unit]:
    """Every unit written in a unit tree, parents first (a visit's cases included)."""
    if unit is None:
        return
    if isinstance(unit, Cases):
        for case in unit.cases:
            yield from walk_units(case.unit)
        return
    yield unit
    if isinstance(unit, Section):
        for child in (*unit.units, *unit.ring, unit.visit, unit.gather, *unit.final):
            yield from walk_units(child)


def flow_units(flow: Flow) -> Iterator[Unit]:
    """Every unit written in a flow: its root's tree, then its `finally` units' trees."""
    for unit in (flow.root, *flow.final):
        yield from walk_units(unit)


def plan_steps(plan: Plan) -> Iterator[Step]:
    """Every step written in a plan's flow and in the flows it references."""
    for current in plan.reachable():
        yield from (unit for unit in flow_units(current.flow) if isinstance(unit, Step))


Given = Mapping[str, Input | str | Path]
"""Inputs given when a flow is run: bound already, a file, or the text of a `--set` (see
`meta.plan.given`)."""


PYTHON_SUFFIX = ".py"
"""meta.builder.module's SUFFIX, the suffix of a flow written in Python (a test keeps them
equal): known here without importing the builder."""


def compile_plan(path: Path, overrides: Given | None = None) -> Plan:
    """Load `path` (a flow file, or a Python file that makes one) and everything it references;
    raise one `UserError` listing every fault."""
    return plan_flow(load_entry(path), overrides, top=True)


def load_entry(path: Path) -> Flow:
    """The flow of a file a person names: a YAML flow file, or a Python file that makes a flow
    (see meta.builder.module; a flowRef always names YAML)."""
    if path.suffix.lower() == PYTHON_SUFFIX:
        # The builder (and all it imports) only for a flow written in Python.
        from meta.builder.module import python_flow

        return python_flow(path)
    return load_flow(path)


def plan_flow(flow: Flow, overrides: Given | None = None, *, top: bool = False) -> Plan:
    """The plan of a loaded flow: flowRefs followed, inputs bound, data checked. `top`: the
    flow is run as the top one (not as a flowRef's or a generate unit's): nothing feeds its
    root."""
    faults: list[Fault] = []
    inputs = dict(flow.inputs)
    declared = _declared_in(flow)
    for name, given in (overrides or {}).items():
        if name not in flow.declarations:
            names = ", ".join(sorted(flow.declarations)) or "none"
            reason = f"the flow declares no input '{name}' (declared: {names})"
            faults.append(Fault(SOURCE, f"/{name}", reason))
            continue
        try:
            inputs[name] = _bound(name, given, flow)
        except UserError as exc:
            faults.extend(exc.faults)
            continue
        declared[name] = (SOURCE, f"/{name}")
    documents: dict[Path, Any] = {}
    plan = Plan(flow, inputs, documents=documents, declared=declared)
    _link(plan, [flow.source], {flow.source: flow}, faults, flow, frozenset() if top else None)
    faults = list(dict.fromkeys(faults))  # a flow flowRef'd twice alike is faulted once
    if not faults:
        _check_bound(plan, None, faults)
    if faults:
        raise FlowInvalid(faults)
    _check_data(plan, faults)
    if faults:
        raise InputFault(faults)
    return plan


def _bound(name: str, given: Input | str | Path, flow: Flow) -> Input:
    if isinstance(given, str):
        return bind(name, given, flow.declarations[name])
    if isinstance(given, Path):
        return FileInput(given.resolve())
    return given


def _link(
    plan: Plan,
    chain: list[Path],
    loaded: dict[Path, Flow],
    faults: list[Fault],
    root: Flow,
    fed: frozenset[str] | None,
) -> None:
    """Load and plan what `plan`'s flow references; `fed`: what feeds its root, when known
    (nothing, for the flow run), so that what its units name as fed to them is checked."""
    if fed is not None:
        faults.extend(fed_faults(plan.flow, fed))
    feeds = known_feeds(plan.flow, fed)
    for ref in (u for u in flow_units(plan.flow) if isinstance(u, FlowRef)):
        where = ref.origin
        if ref.path in chain:
            names = " -> ".join(
                display_path(p) for p in [*chain[chain.index(ref.path) :], ref.path]
            )
            faults.append(
                Fault(where.file, where.pointer + "/flowRef/path", f"flowRef cycle: {names}")
            )
            continue
        if ref.path not in loaded and ref.path in root.embedded:
            try:
                loaded[ref.path] = _embedded(root, ref.path)
            except UserError as exc:
                faults.extend(exc.faults)
                continue
        if ref.path not in loaded:
            if kind_problem(ref.path) == "not found":
                missing = f"flowRef to a file that does not exist: {display_path(ref.path)}"
                faults.append(Fault(where.file, where.pointer + "/flowRef/path", missing))
                continue
            if ref.path.suffix.lower() == ".py":
                python = (
                    f"{display_path(ref.path)} is a Python flow: a flowRef names a YAML flow "
                    "file (write it with the flow's to_yaml(), and name that)"
                )
                faults.append(Fault(where.file, where.pointer + "/flowRef/path", python))
                continue
            try:
                loaded[ref.path] = load_flow(ref.path)
            except UserError as exc:
                faults.extend(exc.faults)
                continue
        child = loaded[ref.path]
        inputs = dict(child.inputs)
        given = _declared_in(child)
        for name, spec in ref.inputs.items():
            given[name] = (where.file, f"{where.pointer}/flowRef/inputs/{name}")
            if name not in child.declarations:
                declared = ", ".join(sorted(child.declarations)) or "none"
                faults.append(
                    Fault(
                        where.file,
                        f"{where.pointer}/flowRef/inputs/{name}",
                        f"flow '{child.name}' declares no input '{name}' (declared: {declared})",
                    )
                )
            inputs[name] = spec
        subplan = Plan(child, inputs, documents=plan.documents, declared=given)
        plan.subplans[ref.origin] = subplan
        _check_bound(subplan, ref, faults)
        _link(subplan, [*chain, ref.path], loaded, faults, root, feeds.get(id(ref)))


def _embedded(root: Flow, path: Path) -> Flow:
    """A flow carried in the root flow's `spec.flows`, validated like a file; faults name it by
    its key there."""
    key = os.path.relpath(path, root.source.parent)
    file = f"{display_path(root.source)} /spec/flows/{pointer([key])[1:]}"
    return flow_from_document(root.embedded[path], path, file=file)


def _declared_in(flow: Flow) -> dict[str, tuple[str, str]]:
    file = flow.root.origin.file
    return {name: (file, f"/spec/inputs/{name}") for name in flow.declarations}


def _check_bound(plan: Plan, ref: FlowRef | None, faults: list[Fault]) -> None:
    """Every input the flow declares without a default is given (by `--set`, or by the flowRef
    `ref` that uses the flow)."""
    for name in plan.flow.declarations:
        if name in plan.inputs:
            continue
        file, where = plan.declared[name]
        if ref is None:
            reason = f"input '{name}' has no default: give it with --set {name}=VALUE"
            faults.append(Fault(file, where, reason))
        else:
            reason = (
                f"input '{name}' of flow '{plan.flow.name}' has no default: "
                "give it in this flowRef's inputs"
            )
            faults.append(Fault(ref.origin.file, f"{ref.origin.pointer}/flowRef/inputs", reason))


def _check_data(plan: Plan, faults: list[Fault]) -> None:
    """Every input file exists and parses, every input holds to its schema, and every
    section's data has the shape it walks."""
    for name, spec in plan.inputs.items():
        if not isinstance(spec, FileInput):
            _check_value(plan, name, spec, faults)
            continue
        problem = kind_problem(spec.path)
        if problem is not None:
            file, where = plan.declared[name]
            where = where if file == "--set" else f"{where}/path"
            shown = display_path(spec.path)
            found = problem != "not found"
            reason = f"input file {shown} {problem}" if found else f"input file not found: {shown}"
            faults.append(Fault(file, where, reason))
            continue
        try:
            if is_json_lines(spec.path):
                for _ in iter_json_lines(spec.path):
                    pass
            elif spec.path.suffix.lower() == ".json":
                plan.data(name)
            _check_file(plan, name, spec, faults)
        except UserError as exc:
            faults.extend(exc.faults)
    if faults:
        return
    for section in (u for u in flow_units(plan.flow) if isinstance(u, Section)):
        if section.over is not None and section.over.input is not None:
            try:
                _check_shape(plan, section, section.over)
            except UserError as exc:
                faults.extend(exc.faults)
    for subplan in plan.subplans.values():
        _check_data(subplan, faults)


def _check_value(plan: Plan, name: str, spec: ValueInput, faults: list[Fault]) -> None:
    schema = _schema_of(plan, name)
    if schema is not None:
        faults.extend(value_faults(name, schema, spec.value, *plan.located(name)))


def _check_file(plan: Plan, name: str, spec: FileInput, faults: list[Fault]) -> None:
    """A file input's document (a JSON-lines file: each record) holds to the input's schema."""
    schema = _schema_of(plan, name)
    if schema is None:
        return
    file = display_path(spec.path)
    if is_json_lines(spec.path):
        faults.extend(record_faults(name, schema, iter_json_lines(spec.path), file))
    else:
        faults.extend(value_faults(name, schema, plan.data(name), file, ""))


def _schema_of(plan: Plan, name: str) -> Any:
    declared = plan.flow.declarations.get(name)
    return None if declared is None else declared.schema


def _check_shape(plan: Plan, section: Section, over: Over) -> None:
    assert over.input is not None
    spec = plan.inputs[over.input]
    file, prefix = plan.located(over.input)
    if section.pattern == "cycle" and isinstance(spec, FileInput) and is_json_lines(spec.path):
        if over.path:
            raise InputFault(
                Fault(
                    section.origin.file,
                    section.origin.pointer + "/over/path",
                    "a JSON-lines stream takes no 'path'",
                )
            )
        return
    value = plan.over(over)
    if section.pattern == "cycle" and not isinstance(value, list):
        raise InputFault(
            Fault(
                file,
                prefix + over.path,
                f"section '{section.name}' needs a JSON array or a JSON-lines file here",
            )
        )
    if section.pattern == "fanout":
        fanned_out(value, over, file, prefix + over.path, section.name)
    if section.pattern in ("dfs", "bfs"):
        check_tree(value, over, file, prefix + over.path, section.name)


def resolve_kept(over: Over, document: Any, where: str, file: str, prefix: str = "") -> Any:
    """`resolve`, but None where the data has nothing for a section that keeps misfits."""
    try:
        return resolve(document, where, file, prefix)
    except InputFault:
        if over.keep_misfits:
            return None
        raise


def fanned_out(value: Any, over: Over, file: str, where: str, section: str) -> Any:
    """What a fanout walks: an array or an object, and with `over.dependsOn` an object whose
    entries name entries (see entries.py); else an `InputFault` at `where` in `file`, or,
    for a fanout that keeps misfits, a collection without items."""
    if over.keep_misfits and not isinstance(value, dict if over.depends_on else list | dict):
        return {} if over.depends_on is not None else []
    if over.depends_on is not None:
        if not isinstance(value, dict):
            raise InputFault(
                Fault(file, where, f"section '{section}' runs named entries: needs an object")
            )
        entry_needs(value, over.depends_on, file, where, keep=over.keep_misfits)
    elif not isinstance(value, list | dict):
        raise InputFault(
            Fault(file, where, f"section '{section}' needs an array or an object to fan out over")
        )
    return value


def check_tree(root: Any, over: Over, file: str, where: str, section: str) -> None:
    """Every node of the tree at `where` in `file` is an object, every children field holds
    objects, every entries field an object of them; else an `InputFault`. A walk that keeps
    misfits (`over.misfits: keep`) takes any data: it walks what holds nodes only."""
    if over.keep_misfits:
        return
    stack: list[tuple[Any, str]] = [(root, where)]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, dict):
            raise InputFault(
                Fault(
                    file,
                    where,
                    f"section '{section}' walks a tree of JSON objects; this is not an object",
                )
            )
        for child_field in over.children:
            children = node.get(child_field)
            if children is None:
                continue
            if isinstance(children, dict):
                stack.append((children, f"{where}/{child_field}"))
            elif isinstance(children, list):
                stack.extend(
                    (child, f"{where}/{child_field}/{i}") for i, child in enumerate(children)
                )
            else:
                raise InputFault(
                    Fault(
                        file,
                        f"{where}/{child_field}",
                        "children must be an array of objects or one object",
                    )
                )
        for entries_field in over.entries:
            entries = node.get(entries_field)
            if entries is None:
                continue
            if not isinstance(entries, dict):
                raise InputFault(
                    Fault(
                        file,
                        f"{where}/{entries_field}",
                        "entries must be an object of objects keyed by name",
                    )
                )
            stack.extend(
                (entry, f"{where}/{entries_field}/{pointer([key])[1:]}")
                for key, entry in entries.items()
            )
