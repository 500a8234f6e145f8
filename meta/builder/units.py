"""The functions that make a flow's parts: one per unit kind and one per pattern, their keyword
arguments the schema's fields in snake_case (`timeout_seconds` writes `timeoutSeconds`).

A dependency is a unit or its name. A `finally` is written `finally_` (a Python keyword).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import PurePath
from typing import Any, TypedDict, Unpack

from meta.builder.document import Flow
from meta.builder.parts import (
    Cache,
    Case,
    Defaults,
    EnvValue,
    FileInput,
    FlowRef,
    FromEnv,
    Generate,
    Input,
    Limits,
    Misfits,
    OnFailure,
    Order,
    Over,
    Pattern,
    Scope,
    SecretRef,
    Section,
    Source,
    Step,
    Unit,
    ValueInput,
    Visit,
)

Dependencies = Sequence[Unit | str] | Unit | str


class UnitOptions(TypedDict, total=False):
    """What any unit may say besides its own fields."""

    depends_on: Dependencies
    when: str


class SectionOptions(UnitOptions, total=False):
    """What any section may say besides its pattern's fields."""

    scope: Scope
    max_active: int
    on_failure: OnFailure
    finally_: Sequence[Unit]
    cache: Cache


@cache
def _own_keywords(function: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only parameters of one of these functions, besides its `**options` (read
    once per function)."""
    parameters = inspect.signature(function).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _known(function: str, options: Mapping[str, Any], allowed: Any, *also: str) -> None:
    """Refuse what `options` holds beyond the keys of the TypedDict `allowed` (a misspelt
    `dependson=` would be dropped without a word, and the flow built without it); `also`, the
    function's other keywords, are named in the hint too."""
    known = [*allowed.__required_keys__, *allowed.__optional_keys__]
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, [*known, *also], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{function}() got an unexpected keyword argument {key!r}{hint}")


def names(units: Dependencies) -> tuple[str, ...]:
    """Units or names, as names."""
    if isinstance(units, Unit | str):
        units = [units]
    return tuple(unit.name if isinstance(unit, Unit) else unit for unit in units)


def step(
    name: str,
    command: Sequence[str],
    *,
    image: str | None = None,
    env: Mapping[str, EnvValue] | None = None,
    resources: Mapping[str, Mapping[str, str]] | None = None,
    retries: int | None = None,
    timeout_seconds: float | None = None,
    cache: Cache | None = None,
    **options: Unpack[UnitOptions],
) -> Step:
    """One program (an argv list, never a shell string): a process locally, a container in a
    pod. `resources` is `{"requests": {...}, "limits": {...}}` in Kubernetes quantities."""
    _known("step", options, UnitOptions, *_own_keywords(step))
    return Step(
        name=name,
        command=tuple(command) if isinstance(command, list | tuple) else command,
        image=image,
        env=env,
        resources=resources,
        retries=retries,
        timeout_seconds=timeout_seconds,
        cache=cache,
        depends_on=names(options.get("depends_on", ())),
        when=options.get("when"),
    )


def _section(name: str, pattern: Pattern, options: SectionOptions, **fields: Any) -> Section:
    _known(pattern, options, SectionOptions, *fields)
    return Section(
        name=name,
        pattern=pattern,
        scope=options.get("scope", "macro"),
        max_active=options.get("max_active"),
        on_failure=options.get("on_failure"),
        finally_=tuple(options.get("finally_", ())),
        cache=options.get("cache"),
        depends_on=names(options.get("depends_on", ())),
        when=options.get("when"),
        **fields,
    )


def sequence(name: str, *units: Unit, **options: Unpack[SectionOptions]) -> Section:
    """The units one after another, each one's outputs flowing into the next."""
    return _section(name, "sequence", options, units=units)


def dag(name: str, *units: Unit, **options: Unpack[SectionOptions]) -> Section:
    """The units, each started once the units it depends on (`depends_on`) succeeded."""
    return _section(name, "dag", options, units=units)


def fanin(name: str, *units: Unit, gather: Unit, **options: Unpack[SectionOptions]) -> Section:
    """The units side by side, then `gather` over all their outputs."""
    return _section(name, "fanin", options, units=units, gather=gather)


def fanout(
    name: str,
    *,
    over: str | None,
    visit: Visit,
    path: str | None = None,
    gather: Unit | None = None,
    depends_on_field: str | None = None,
    misfits: Misfits | None = None,
    **options: Unpack[SectionOptions],
) -> Section:
    """One `visit` per item of the collection at `path` (a JSON pointer) in input `over` (None:
    in the node of the visit this section is in), then `gather` (if given) over all their
    outputs. Over an object, `depends_on_field` names the field of each entry that lists the
    entries it waits for (`over.dependsOn`). `misfits="keep"`: no collection there is one
    without items."""
    walked = Over(input=over, path=path, depends_on=depends_on_field, misfits=misfits)
    return _section(name, "fanout", options, over=walked, visit=visit, gather=gather)


def dfs(
    name: str,
    *,
    over: str | None,
    visit: Visit,
    children: Sequence[str] | str | None = None,
    entries: Sequence[str] | str | None = None,
    path: str | None = None,
    order: Order | None = None,
    misfits: Misfits | None = None,
    **options: Unpack[SectionOptions],
) -> Section:
    """A depth-first walk of the tree at `path` in input `over`, one `visit` per node; a node's
    `children` fields hold its children (one node or an array of them), its `entries` fields
    objects of child nodes keyed by name. `order="post"` gathers children's outputs up;
    `misfits="keep"` leaves a field holding no nodes in its node, as data."""
    return _walk(name, "dfs", over, (children, entries), visit, path, order, misfits, options)


def bfs(
    name: str,
    *,
    over: str | None,
    visit: Visit,
    children: Sequence[str] | str | None = None,
    entries: Sequence[str] | str | None = None,
    path: str | None = None,
    order: Order | None = None,
    misfits: Misfits | None = None,
    **options: Unpack[SectionOptions],
) -> Section:
    """The same walk as `dfs`, level by level."""
    return _walk(name, "bfs", over, (children, entries), visit, path, order, misfits, options)


def _walk(
    name: str,
    pattern: Pattern,
    over: str | None,
    fields: tuple[Sequence[str] | str | None, Sequence[str] | str | None],
    visit: Visit,
    path: str | None,
    order: Order | None,
    misfits: Misfits | None,
    options: SectionOptions,
) -> Section:
    children, entries = (list(f) if isinstance(f, list | tuple) else f for f in fields)
    return _section(
        name,
        pattern,
        options,
        over=Over(input=over, path=path, children=children, named_entries=entries, misfits=misfits),
        visit=visit,
        order=order,
    )


def cycle(
    name: str,
    *ring: Unit,
    over: str,
    chunk: int,
    path: str | None = None,
    rounds: int | None = None,
    **options: Unpack[SectionOptions],
) -> Section:
    """Chunks of `chunk` records of the JSON-lines input `over` go round the `ring` of units,
    for `rounds` rounds."""
    return _section(
        name,
        "cycle",
        options,
        over=Over(input=over, path=path, chunk=chunk),
        ring=ring,
        rounds=rounds,
    )


def case(when: str, unit: Unit) -> Case:
    """A case of a visit: `unit` runs for the nodes the expression `when` holds for."""
    return Case(when=when, unit=unit)


def flow_ref(
    name: str,
    path: str | PurePath,
    *,
    inputs: Mapping[str, Input | PurePath | Any] | None = None,
    **options: Unpack[UnitOptions],
) -> FlowRef:
    """Another flow file (YAML, relative to this flow's file) used as a unit."""
    _known("flow_ref", options, UnitOptions, *_own_keywords(flow_ref))
    return FlowRef(
        name=name,
        path=path,
        inputs=_inputs(inputs),
        depends_on=names(options.get("depends_on", ())),
        when=options.get("when"),
    )


def generate(
    name: str,
    description: Source,
    *,
    data: Source | None = None,
    generator: str | None = None,
    **options: Unpack[UnitOptions],
) -> Generate:
    """Run the generators at run time on `description` (and `data`), then the flow they make."""
    _known("generate", options, UnitOptions, *_own_keywords(generate))
    return Generate(
        name=name,
        description=description,
        data=data,
        generator=generator,
        depends_on=names(options.get("depends_on", ())),
        when=options.get("when"),
    )


def from_unit(unit: Unit | str, file: str) -> Source:
    """The file `file` that the unit (upstream of the generate unit) wrote in its outputs."""
    return Source(from_unit=names(unit)[0], file=file)


def from_input(name: str) -> Source:
    """One of the flow's inputs, by name."""
    return Source(input=name)


def from_env(variable: str) -> FromEnv:
    """An environment value read from `variable` in the environment meta runs in."""
    return FromEnv(variable=variable)


def secret_ref(name: str, key: str) -> SecretRef:
    """An environment value read from `key` of the Kubernetes secret `name`."""
    return SecretRef(secret=name, key=key)


def file_input(
    path: str | PurePath,
    *,
    description: str | None = None,
    schema: Mapping[str, Any] | None = None,
) -> FileInput:
    """An input read from a file, relative to the flow's file."""
    return FileInput(path=path, description=description, schema=schema)


def value_input(
    value: Any, *, description: str | None = None, schema: Mapping[str, Any] | None = None
) -> ValueInput:
    """An input given inline: any JSON value."""
    return ValueInput(value=value, description=description, schema=schema)


def _inputs(given: Mapping[str, Input | PurePath | Any] | None) -> dict[str, Input] | None:
    """Inputs: a path (`pathlib.Path`) is a file input, an input made by `file_input` or
    `value_input` is itself, anything else is an inline value."""
    if given is None:
        return None
    made: dict[str, Input] = {}
    for name, value in given.items():
        if isinstance(value, FileInput | ValueInput):
            made[name] = value
        elif isinstance(value, PurePath):
            made[name] = FileInput(path=value)
        else:
            made[name] = ValueInput(value=value)
    return made


def defaults(
    *,
    retries: int | None = None,
    timeout_seconds: float | None = None,
    retry_backoff_seconds: float | None = None,
    cache: Cache | None = None,
) -> Defaults:
    """What every step of the flow gets unless it says otherwise."""
    return Defaults(
        retries=retries,
        timeout_seconds=timeout_seconds,
        retry_backoff_seconds=retry_backoff_seconds,
        cache=cache,
    )


def limits(*, max_depth: int | None = None, max_units: int | None = None) -> Limits:
    """Bounds on flows generated at run time (`generate` units)."""
    return Limits(max_depth=max_depth, max_units=max_units)


def flow(
    name: str,
    root: Unit,
    *,
    inputs: Mapping[str, Input | PurePath | Any] | None = None,
    defaults: Defaults | None = None,
    limits: Limits | None = None,
    parallelism: int | None = None,
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    finally_: Sequence[Unit] = (),
) -> Flow:
    """A flow program: `root` run over the flow's `inputs` (see `_inputs` for what a value
    means). `.to_yaml()` writes it as a flow file; `meta run FILE.py` runs it."""
    return Flow(
        name=name,
        root=root,
        inputs=_inputs(inputs),
        defaults=defaults,
        limits=limits,
        parallelism=parallelism,
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        finally_=tuple(finally_),
    )
