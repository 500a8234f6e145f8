"""A plan in words: the tree of sections, their patterns and bounds (`meta plan`)."""

from __future__ import annotations

import json
import shlex

from meta.flow.files import display_path
from meta.flow.model import (
    Cache,
    Cases,
    FileInput,
    FlowRef,
    FromEnv,
    Generate,
    Input,
    SecretRef,
    Section,
    Step,
    Unit,
    UnitSource,
    max_active,
)
from meta.plan.given import SOURCE
from meta.plan.plan import Plan

MAX_SHOWN = 80
"""Characters of an input's value shown at most."""


def describe(plan: Plan) -> list[str]:
    """The lines of a plan's description, indented two spaces per level."""
    flow = plan.flow
    lines = [f"flow {flow.name} ({display_path(flow.source)})"]
    for name, declared in flow.declarations.items():
        given = " (--set)" if plan.declared.get(name, ("",))[0] == SOURCE else ""
        about = f" ({declared.description})" if declared.description else ""
        checked = ", checked against its schema" if declared.schema not in (None, True) else ""
        lines.append(f"  input {name}{about}: {_shown(plan.inputs[name])}{given}{checked}")
    d = flow.defaults
    cached = f", steps {_cache(d.cache)}" if d.cache.enabled else ""
    lines.append(f"  defaults: {d.retries} retries, timeout {d.timeout_seconds:g} s{cached}")
    if flow.parallelism is not None:
        lines.append(f"  parallelism: at most {flow.parallelism} units of the run at once")
    lines.extend(_unit(plan, flow.root, 1, ""))
    for unit in flow.final:
        lines.extend(_unit(plan, unit, 1, "finally, whatever happened: "))
    return lines


def _shown(spec: Input) -> str:
    if isinstance(spec, FileInput):
        return f"file {display_path(spec.path)}"
    text = json.dumps(spec.value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _sourced(env: dict[str, str | FromEnv | SecretRef]) -> str:
    """The variables a step takes from elsewhere, by where from (never a value)."""
    parts = [
        f"{key} from secret {value.name}/{value.key}"
        if isinstance(value, SecretRef)
        else f"{key} from ${value.name}"
        for key, value in env.items()
        if not isinstance(value, str)
    ]
    return f"; env {', '.join(parts)}" if parts else ""


def _unit(plan: Plan, unit: Unit, depth: int, role: str) -> list[str]:
    pad = "  " * depth
    if unit.when is not None:
        role = f"{role}only when {unit.when}: "
    if isinstance(unit, Step):
        image = f" in image {unit.run.image}" if unit.run.image else ""
        bounds = []
        if unit.retries is not None:
            bounds.append(f"{unit.retries} retries")
        if unit.timeout_seconds is not None:
            bounds.append(f"timeout {unit.timeout_seconds:g} s")
        if unit.cache is not None:
            bounds.append(_cache(unit.cache))
        own = f" ({', '.join(bounds)})" if bounds else ""
        env = _sourced(dict(unit.run.env))
        return [f"{pad}{role}step {unit.name}{own}: {_command(unit.run.command)}{image}{env}"]
    if isinstance(unit, Generate):
        return [f"{pad}{role}generate {unit.name}: {_generated(unit)}"]
    if isinstance(unit, FlowRef):
        sub = plan.subplan(unit)
        bound = f", inputs {', '.join(sorted(unit.inputs))} bound here" if unit.inputs else ""
        lines = [
            f"{pad}{role}flowRef {unit.name} -> flow {sub.flow.name} "
            f"({display_path(sub.flow.source)}{bound})"
        ]
        return lines + _unit(sub, sub.flow.root, depth + 1, "")
    return _section(plan, unit, depth, role)


def _section(plan: Plan, section: Section, depth: int, role: str) -> list[str]:
    pad = "  " * depth
    what = {
        "sequence": "runs its units in order",
        "dag": "runs its units as their dependencies finish",
        "fanin": "runs its units side by side, then gathers their outputs",
    }.get(section.pattern, "")
    over = section.over
    if over is not None:
        where = f" at {over.path}" if over.path else ""
        source = (
            f"input '{over.input}'{where}"
            if over.input is not None
            else f"the result of unit '{over.result}'{where}"
            if over.result is not None
            else f"the visit's node{where}"
        )
        if section.pattern == "fanout":
            what = f"fans out one visit per item of {source}"
            if over.depends_on is not None:
                what += f", each after the items its '{over.depends_on}' names"
        elif section.pattern == "cycle":
            what = (
                f"cuts {source} into chunks of {over.chunk} and sends each chunk round a ring of "
                f"{len(section.ring)}, {section.rounds} round(s)"
            )
        else:
            walk = "depth first" if section.pattern == "dfs" else "breadth first"
            flows = (
                "parent output flows down"
                if section.order == "pre"
                else "children's outputs flow up"
            )
            fields = [f"children in {', '.join(over.children)}"] if over.children else []
            if over.entries:
                fields.append(f"named entries in {', '.join(over.entries)}")
            what = f"walks {source} {walk}, {section.order}-order ({flows}); " + "; ".join(fields)
    scope = "one pod, units share a RAM scratch" if section.scope == "micro" else "pods"
    policy = (
        "; on a failure, skips only what depends on it and goes on"
        if section.on_failure == "continue"
        else ""
    )
    cached = f"; {_cache(section.cache)} as a whole" if section.cache is not None else ""
    lines = [
        f"{pad}{role}{section.scope} section {section.name} [{section.pattern}]: {what}; "
        f"at most {max_active(section)} live; {scope}{policy}{cached}"
    ]
    for unit in section.units:
        after = f"after {', '.join(unit.depends_on)}: " if unit.depends_on else ""
        lines.extend(_unit(plan, unit, depth + 1, after))
    for i, member in enumerate(section.ring):
        lines.extend(_unit(plan, member, depth + 1, f"ring {i + 1}: "))
    if isinstance(section.visit, Cases):
        lines.append(f"{pad}  visit per node, the first case that holds:")
        for case in section.visit.cases:
            lines.extend(_unit(plan, case.unit, depth + 2, f"when {case.when}: "))
    elif section.visit is not None:
        per = "item" if section.pattern == "fanout" else "node"
        lines.extend(_unit(plan, section.visit, depth + 1, f"visit per {per}: "))
    if section.gather is not None:
        lines.extend(_unit(plan, section.gather, depth + 1, "gather: "))
    for unit in section.final:
        lines.extend(_unit(plan, unit, depth + 1, "finally, whatever happened: "))
    return lines


def _cache(cache: Cache) -> str:
    if not cache.enabled:
        return "not cached"
    return f"cached (version {cache.version})" if cache.version else "cached"


def _command(command: tuple[str, ...]) -> str:
    """The argv on one line, each argument quoted as a shell would need it (newlines shown as
    `\\n`, so a multi-line script keeps to its line of the tree)."""
    return " ".join(shlex.quote(argument).replace("\n", "\\n") for argument in command)


def generated_from(source: UnitSource) -> str:
    if source.input is not None:
        return f"input '{source.input}'"
    return f"{source.file} from unit '{source.from_unit}'"


def _generated(unit: Generate) -> str:
    by = f"generator '{unit.generator}'" if unit.generator else "the best-scoring generator"
    data = f" over {generated_from(unit.data)}" if unit.data is not None else ""
    return (
        f"at run time, {by} turns {generated_from(unit.description)}{data} into a flow, "
        "which runs here as a nested unit"
    )
