"""Reading one flow file: YAML (safely), the schema, then the typed model and semantic checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meta.errors import Fault, FlowInvalid, pointer
from meta.flow.checks import semantic_faults
from meta.flow.files import display_path, parse_yaml, read_text
from meta.flow.model import (
    Cache,
    Case,
    Cases,
    Defaults,
    FileInput,
    Flow,
    FlowRef,
    FromEnv,
    Generate,
    Input,
    InputDeclaration,
    Limits,
    Origin,
    Over,
    Run,
    SecretRef,
    Section,
    Step,
    Unit,
    UnitSource,
    ValueInput,
)
from meta.flow.validity import schema_faults
from meta.steps.yamlnodes import MAX_INT_DIGITS

API_VERSION = "meta-orchestrator.io/v1alpha1"
KIND = "MetaFlow"
NOT_A_FLOW = (
    f"not a flow: a flow file is a YAML mapping with apiVersion: {API_VERSION} and kind: {KIND}"
    " (nothing of this file is shown)"
)


def read_document(path: Path) -> Any:
    """The YAML (or JSON) document of a flow file; a missing or unparsable file is a fault."""
    return parse_yaml(read_text(path, FlowInvalid), display_path(path), FlowInvalid)


def load_flow(path: Path) -> Flow:
    """Load, validate and type one flow file. Raises `FlowInvalid` listing every fault found."""
    path = path.resolve() if path.is_absolute() else (Path.cwd() / path).resolve()
    return flow_from_document(read_document(path), path)


def flow_from_document(document: Any, path: Path, file: str | None = None) -> Flow:
    """Validate a flow document said to live at `path` and type it; `FlowInvalid` on faults.
    Faults name `file`, or the path when none is given."""
    file = file or display_path(path)
    if not _meant_as_flow(document):
        # Whatever else the file holds (a flowRef may name any file) is not repeated in a fault.
        raise FlowInvalid(Fault(file, "", NOT_A_FLOW))
    unwritable = _unwritable_at(document)
    if unwritable is not None:
        raise FlowInvalid(Fault(file, *unwritable))
    faults = schema_faults(document, file)
    if faults:
        raise FlowInvalid(faults)
    flow = build_flow(document, path, file)
    faults = semantic_faults(flow)
    if faults:
        raise FlowInvalid(faults)
    return flow


def _unwritable_at(document: Any) -> tuple[str, str] | None:
    """The JSON pointer of the first value a flow file could not hold, and why: a key or string
    holding a NUL byte, which no path, command or environment can carry, or an integer the YAML
    reader refuses (so a document built in Python holds to what its file would); None when
    there is none."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str) and "\0" in value:
            return pointer(path), NUL_FAULT
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT_BOUND:
            return pointer(path), f"an integer of more than {MAX_INT_DIGITS} digits"
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and "\0" in key:
                    return pointer(path), NUL_FAULT
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
    return None


NUL_FAULT = "a NUL byte is in no name, path, command or value"
INT_BOUND = 10**MAX_INT_DIGITS


def _meant_as_flow(document: Any) -> bool:
    """Not a mapping (the schema says so without quoting it), or a mapping that says it is a
    MetaFlow by its apiVersion or its kind."""
    return not isinstance(document, dict) or (
        document.get("apiVersion") == API_VERSION or document.get("kind") == KIND
    )


def build_flow(document: dict[str, Any], path: Path, file: str) -> Flow:
    """The typed flow of a document that passed the schema."""
    spec = document["spec"]
    origin = Origin(file, "")
    defaults = spec.get("defaults", {})
    declarations = _declarations(spec.get("inputs", {}), path.parent)
    return Flow(
        name=document["metadata"]["name"],
        source=path,
        root=_unit(spec["root"], origin.at("spec", "root"), path.parent),
        inputs={name: d.default for name, d in declarations.items() if d.default is not None},
        declarations=declarations,
        final=_units(spec.get("finally", ()), origin.at("spec", "finally"), path.parent),
        embedded={
            (path.parent / key).resolve(): document
            for key, document in spec.get("flows", {}).items()
        },
        limits=Limits(
            max_depth=spec.get("limits", {}).get("maxDepth", 8),
            max_units=spec.get("limits", {}).get("maxUnits", 100_000),
        ),
        defaults=Defaults(
            retries=defaults.get("retries", 0),
            timeout_seconds=float(defaults.get("timeoutSeconds", 3600)),
            retry_backoff_seconds=float(defaults.get("retryBackoffSeconds", 1.0)),
            cache=_cache(defaults.get("cache")) or Cache(enabled=False),
        ),
        # JSON Schema takes 4.0 as an integer.
        parallelism=int(spec["parallelism"]) if "parallelism" in spec else None,
        pod_gc=spec.get("podGC", {}).get("strategy", "").replace("OnWorkflow", "OnFlow"),
    )


def _inputs(raw: dict[str, Any], base: Path) -> dict[str, Input]:
    return {name: _input(spec, base) for name, spec in raw.items()}


def _input(spec: dict[str, Any], base: Path) -> Input:
    if "path" in spec:
        return FileInput((base / spec["path"]).resolve())
    return ValueInput(spec["value"])


def _declarations(raw: dict[str, Any], base: Path) -> dict[str, InputDeclaration]:
    return {
        name: InputDeclaration(
            default=_input(spec, base) if "path" in spec or "value" in spec else None,
            description=spec.get("description"),
            schema=spec.get("schema"),
        )
        for name, spec in raw.items()
    }


def _env(raw: dict[str, Any]) -> dict[str, str | FromEnv | SecretRef]:
    def value(given: Any) -> str | FromEnv | SecretRef:
        if isinstance(given, str):
            return given
        if "fromEnv" in given:
            return FromEnv(given["fromEnv"])
        return SecretRef(given["secretRef"]["name"], given["secretRef"]["key"])

    return {key: value(given) for key, given in raw.items()}


def _unit(raw: dict[str, Any], origin: Origin, base: Path) -> Unit:
    depends_on = tuple(raw.get("dependsOn", ()))
    when = raw.get("when")
    if "run" in raw:
        run = raw["run"]
        return Step(
            name=raw["name"],
            run=Run(
                tuple(run["command"]),
                run.get("image"),
                _env(run.get("env", {})),
                {kind: dict(amounts) for kind, amounts in run.get("resources", {}).items()},
            ),
            origin=origin,
            retries=raw.get("retries"),
            timeout_seconds=raw.get("timeoutSeconds"),
            depends_on=depends_on,
            cache=_cache(raw.get("cache")),
            when=when,
        )
    if "generate" in raw:
        generate = raw["generate"]
        return Generate(
            name=raw["name"],
            description=_source(generate["description"]),
            origin=origin,
            data=_source(generate["data"]) if "data" in generate else None,
            generator=generate.get("generator"),
            depends_on=depends_on,
            when=when,
        )
    if "flowRef" in raw:
        ref = raw["flowRef"]
        return FlowRef(
            name=raw["name"],
            path=(base / ref["path"]).resolve(),
            origin=origin,
            inputs=_inputs(ref.get("inputs", {}), base),
            depends_on=depends_on,
            when=when,
        )
    over = raw.get("over")
    return Section(
        name=raw["name"],
        scope=raw["scope"],
        pattern=raw["pattern"],
        origin=origin,
        max_active=raw.get("maxActive"),
        units=_units(raw.get("units", ()), origin.at("units"), base),
        over=Over(
            input=over.get("input"),
            path=over.get("path", ""),
            children=_names(over.get("children", ())),
            entries=_names(over.get("entries", ())),
            chunk=over.get("chunk", 0),
            depends_on=over.get("dependsOn"),
            result=over.get("result"),
            keep_misfits=over.get("misfits") == "keep",
        )
        # `over: {}` is an over too: it walks the visit's node, or is refused for want of one.
        if over is not None
        else None,
        visit=_visit(raw["visit"], origin.at("visit"), base) if "visit" in raw else None,
        gather=_unit(raw["gather"], origin.at("gather"), base) if "gather" in raw else None,
        order=raw.get("order", "pre"),
        ring=tuple(
            _unit(member, origin.at("ring", i), base)
            for i, member in enumerate(raw.get("ring", ()))
        ),
        rounds=raw.get("rounds", 1),
        depends_on=depends_on,
        on_failure=raw.get("onFailure", "stop"),
        final=_units(raw.get("finally", ()), origin.at("finally"), base),
        cache=_cache(raw.get("cache")),
        when=when,
    )


def _units(raw: list[dict[str, Any]], origin: Origin, base: Path) -> tuple[Unit, ...]:
    return tuple(_unit(child, origin.at(i), base) for i, child in enumerate(raw))


def _names(raw: str | list[str]) -> tuple[str, ...]:
    """A field name or a list of them."""
    return (raw,) if isinstance(raw, str) else tuple(raw)


def _cache(raw: bool | dict[str, str] | None) -> Cache | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        return Cache(enabled=raw)
    return Cache(enabled=True, version=raw.get("version", ""))


def _source(raw: dict[str, Any]) -> UnitSource:
    return UnitSource(from_unit=raw.get("fromUnit"), file=raw.get("file"), input=raw.get("input"))


def _visit(raw: dict[str, Any], origin: Origin, base: Path) -> Unit | Cases:
    if "cases" not in raw:
        return _unit(raw, origin, base)
    return Cases(
        tuple(
            Case(
                when=case["when"],
                unit=_unit(case["unit"], origin.at("cases", i, "unit"), base),
                origin=origin.at("cases", i),
            )
            for i, case in enumerate(raw["cases"])
        )
    )
