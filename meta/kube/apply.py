"""MetaFlow resources from flow files (`meta apply`), their status as `meta status` shows it, and
their units' logs (`meta logs`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meta.builder.module import built, is_python
from meta.errors import Fault, FlowInvalid, InputFault, UserError, lookup
from meta.flow.files import display_path, parse_json, parse_yaml_data, read_text
from meta.flow.model import FileInput, Flow, FlowRef, Generate, Input, ValueInput
from meta.flow.parse import read_document
from meta.generate.worker import OVERLAY_SUFFIXES, SCHEMA_SUFFIXES, stem
from meta.kube.api import ApiFailed, Conflict, KubeApi, NotFound
from meta.kube.layout import env_faults
from meta.kube.podgc import strategy_of
from meta.kube.types import (
    ANNOTATION_UNIT_ID,
    GROUP,
    KIND,
    LABEL_ATTEMPT,
    LABEL_FLOW,
    LABEL_SCOPE,
    SCHEMA_KIND,
    VERSION,
)
from meta.plan.inputs import is_json_lines, iter_json_lines, read_json
from meta.plan.plan import Plan, flow_units

MAX_SPEC_BYTES = 1024 * 1024
"""etcd keeps objects of at most 1.5 MiB; inputs beyond this belong on a volume."""


def _document(source: Path) -> Any:
    """The document of the flow file named on the command line; a Python file is run again
    for it (the plan holds the typed flow, not its document)."""
    return built(source).to_dict(validate=False) if is_python(source) else read_document(source)


def flow_resource(plan: Plan, namespace: str) -> dict[str, Any]:
    """The MetaFlow resource of a planned flow file, self-contained: every file input (of the
    flow, of its flowRefs, of the flows they reference) embedded in `spec.files` (see
    `_carried`), and every referenced flow embedded in `spec.flows` by its path relative to the
    flow's file. Inputs given with `--set` are the resource's inputs (their schemas kept, so
    the operator checks them again); a step taking a variable `fromEnv` is refused."""
    flow = plan.flow
    faults = env_faults(plan)
    if faults:
        raise FlowInvalid(faults)
    base = flow.source.parent
    files: dict[str, str] = {}
    document = _carried(_document(flow.source), flow, plan.inputs, base, files)
    spec = document["spec"]
    flows: dict[str, Any] = {}
    pending = list(plan.subplans.values())
    while pending:
        sub = pending.pop(0)
        key = os.path.relpath(sub.flow.source, base)
        if key not in flows:
            # The operator finds an embedded file by the path relative to the flows' folders
            # within the root's; a flow outside it keeps its inputs as `_input_entry` says.
            outside = key.split(os.sep)[0] == os.pardir
            flows[key] = _carried(
                read_document(sub.flow.source), sub.flow, sub.flow.inputs, base,
                {} if outside else files,
            )  # fmt: skip
        pending.extend(sub.subplans.values())
    if files:
        spec["files"] = dict(sorted(files.items()))
    if flows:
        spec["flows"] = flows
    size = len(json.dumps(spec))
    if size > MAX_SPEC_BYTES:
        raise InputFault(
            Fault(
                display_path(flow.source),
                "/spec",
                f"with its input files and referenced flows embedded the spec holds {size} "
                f"bytes; a MetaFlow resource carries at most {MAX_SPEC_BYTES} (put large data "
                "on the operator's data volume)",
            )
        )
    metadata: dict[str, Any] = {"name": flow.name, "namespace": namespace}
    for key in ("labels", "annotations"):
        if key in document["metadata"]:
            metadata[key] = document["metadata"][key]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}


def _carried(
    document: dict[str, Any],
    flow: Flow,
    inputs: Mapping[str, Input],
    root: Path,
    files: dict[str, str],
) -> dict[str, Any]:
    """A flow document whose file inputs (its own, and those its flowRefs bind) stay paths,
    their text embedded in `files` by the path relative to `root`, the folder of the flow being
    applied. A file that cannot be embedded (outside that folder, or not UTF-8 text) is given
    as described at `_input_entry`."""
    spec = document["spec"]
    # `meta apply` alone writes what the resource carries.
    spec.pop("files", None)
    base = flow.source.parent
    as_files = {
        source.input
        for unit in flow_units(flow)
        if isinstance(unit, Generate)
        for _, source in unit.sources()
        if source.input is not None
    }

    def entry(given: Input, as_file: bool) -> dict[str, Any]:
        if isinstance(given, FileInput) and _embed(given.path, root, files):
            return {"path": os.path.relpath(given.path, base)}
        return _input_entry(given, base, as_file)

    declared: dict[str, Any] = {}
    for name, declaration in flow.declarations.items():
        given = inputs.get(name)
        declared[name] = {} if given is None else entry(given, name in as_files)
        if declaration.description is not None:
            declared[name]["description"] = declaration.description
        if declaration.schema is not None:
            declared[name]["schema"] = declaration.schema
    if declared:
        spec["inputs"] = declared
    for ref in (u for u in flow_units(flow) if isinstance(u, FlowRef)):
        written = lookup(document, ref.origin.pointer)["flowRef"]
        if ref.inputs:
            written["inputs"] = {name: entry(g, False) for name, g in ref.inputs.items()}
    return document


def _embed(path: Path, root: Path, files: dict[str, str]) -> bool:
    """Add the file's text to `files` under its path relative to `root`; False when it cannot
    be embedded (outside `root`, or not UTF-8 text)."""
    key = Path(os.path.relpath(path, root)).as_posix()
    if key.split("/")[0] == "..":
        return False
    try:
        # Bytes decoded, not text read: line ends stay as they are.
        files[key] = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return True


def _input_entry(given: Input, base: Path, as_file: bool) -> dict[str, Any]:
    """An input as the resource carries it: a JSON (or JSON-lines) file as its value; a file
    that is not JSON, or that a generate unit reads as a file, stays a path, which the operator
    resolves on its data volume (`--data-dir`)."""
    if isinstance(given, ValueInput):
        return {"value": given.value}
    if not as_file:
        try:
            if is_json_lines(given.path):
                return {"value": list(iter_json_lines(given.path))}
            return {"value": read_json(given.path)}
        except InputFault:
            pass
    return {"path": os.path.relpath(given.path, base)}


async def apply_flow(api: KubeApi, body: Mapping[str, Any]) -> str:
    """Create the resource, or replace its spec; "created" or "configured"."""
    namespace = body["metadata"]["namespace"]
    try:
        await api.create_flow(namespace, body)
        return "created"
    except Conflict:
        current = await api.get_flow(namespace, body["metadata"]["name"])
        replaced = {**body, "metadata": {**current["metadata"], **body["metadata"]}}
        await api.replace_flow(namespace, replaced)
        return "configured"


SCHEMA_KEYWORDS = ("$schema", "$defs", "definitions", "properties", "$ref", "oneOf", "anyOf")
"""Top-level keys that say a document is a JSON Schema (as the built-in generators read it)."""


def is_schema_file(path: Path) -> bool:
    """Whether `meta apply` takes `path` for a data description (a MetaSchema) rather than a
    flow: named `*.schema.json` (or `.yaml`, `.yml`), or a JSON/YAML document that is not a
    flow (no `kind: MetaFlow`, no `spec`) and holds JSON Schema keywords at its top."""
    name = path.name.lower()
    if name.endswith(SCHEMA_SUFFIXES):
        return True
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        return False
    try:
        document = _data_document(path)
    except UserError:
        return False  # the flow reader reports it
    return (
        isinstance(document, dict)
        and document.get("kind") != KIND
        and "spec" not in document
        and any(key in document for key in SCHEMA_KEYWORDS)
    )


def _data_document(path: Path) -> Any:
    """A JSON or YAML file read as the generators read descriptions and data."""
    return _read_data(path)[0]


def _read_data(path: Path) -> tuple[Any, str]:
    """A JSON or YAML file's document, read as the generators read descriptions and data, and
    its text."""
    file = display_path(path)
    text = read_text(path)
    if path.suffix.lower() == ".json":
        return parse_json(text, file), text
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml_data(text, file), text
    raise UserError(Fault(file, "", "give JSON (.json) or YAML (.yaml, .yml)"))


def resource_name(text: str) -> str:
    """`text` as a resource name (lower-case DNS label, at most 63 characters)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower())[:63].strip("-")


def schema_resource(
    source: Path,
    namespace: str,
    *,
    data: Path | None = None,
    data_path: str | None = None,
    overlay: Path | None = None,
    generator: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The MetaSchema of a description file: the schema, its overlay (`--overlay`, or
    `NAME.meta.yaml` beside `NAME.schema.json` as `meta generate` finds it) and its data
    (inline from `--data`, or its path on the store), each as its file's text. Faults name the
    file and the JSON path."""
    file = display_path(source)
    schema, schema_text = _read_data(source)
    if not isinstance(schema, dict):
        raise UserError(Fault(file, "", "a data description is an object (a JSON Schema)"))
    given = name or resource_name(stem(source))
    if not given or resource_name(given) != given:
        reason = f"{given!r} is not a resource name (lower-case letters, digits, '-'): use --name"
        raise UserError(Fault(file, "", reason))
    # Each file's text, checked here: the API server would not keep an object's key order,
    # which generators follow.
    spec: dict[str, Any] = {"schema": schema_text}
    if overlay is None:
        beside = (source.parent / f"{stem(source)}{suffix}" for suffix in OVERLAY_SUFFIXES)
        overlay = next((path for path in beside if path.is_file()), None)
    if overlay is not None:
        hints, hints_text = _read_data(overlay)
        if not isinstance(hints, dict):
            reason = "an overlay maps JSON pointers into the schema to x-meta objects"
            raise UserError(Fault(display_path(overlay), "", reason))
        spec["overlay"] = hints_text
    if data is not None and data_path is not None:
        raise UserError(Fault(file, "", "give --data or --data-path, not both"))
    if data is not None:
        spec["data"] = _read_data(data)[1]
    if data_path is not None:
        if os.path.isabs(data_path) or ".." in data_path.split("/"):
            reason = f"--data-path {data_path}: a path inside the store (relative, no ..)"
            raise UserError(Fault(file, "", reason))
        spec["dataPath"] = data_path
    if generator is not None:
        spec["generator"] = generator
    size = len(json.dumps(spec).encode())
    if size > MAX_SPEC_BYTES:
        raise InputFault(
            Fault(
                file,
                "/spec",
                f"the schema, overlay and data hold {size} bytes; a MetaSchema carries at most "
                f"{MAX_SPEC_BYTES} (put the data on the store and give --data-path)",
            )
        )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": SCHEMA_KIND,
        "metadata": {"name": given, "namespace": namespace},
        "spec": spec,
    }


async def apply_schema(api: KubeApi, body: Mapping[str, Any]) -> str:
    """Create the MetaSchema, or replace its spec (the operator then makes a new MetaFlow);
    "created" or "configured"."""
    namespace = body["metadata"]["namespace"]
    try:
        await api.create_schema(namespace, body)
        return "created"
    except Conflict:
        current = await api.get_schema(namespace, body["metadata"]["name"])
        replaced = {**current, "spec": body["spec"]}
        await api.replace_schema(namespace, replaced)
        return "configured"


def status_view(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A MetaFlow's status in the shape `meta status` shows a local run in: state, times,
    counts by state, the failed unit, sections, outputs. A count the operator did not write
    (an older one kept no count of cancelled and cached units) is None."""
    meta = resource["metadata"]
    status: Mapping[str, Any] = resource.get("status") or {}
    started, finished = status.get("startedAt"), status.get("finishedAt")
    return {
        "run": f"{meta['namespace']}/{meta['name']}",
        "flow": meta["name"],
        "state": str(status.get("phase", "Pending")).lower(),
        "startedAt": started,
        "finishedAt": finished,
        "durationSeconds": _seconds_between(started, finished),
        "units": {
            "succeeded": status.get("succeeded", 0),
            "failed": status.get("failed", 0),
            "skipped": status.get("skipped"),
            "cancelled": status.get("cancelled"),
            "cached": status.get("cached"),
            "running": status.get("active", 0),
        },
        "failedUnit": status.get("failedUnit"),
        "failedUnits": status.get("failedUnits", []),
        "reason": status.get("reason"),
        "conditions": [
            {"type": c["type"], "status": c["status"], "message": c.get("message", "")}
            for c in status.get("conditions", [])
        ],
        "sections": [
            {key: section.get(key) for key in SECTION_KEYS}
            for section in status.get("sections", [])
        ],
        "outputs": status.get("outputs"),
        "cachedUnits": [dict(hit) for hit in status.get("cachedUnits", [])],
        "result": status.get("result"),
    }


SECTION_KEYS = ("id", "pattern", "scope", "maxActive", "peakActive", "unitsRun", "state")


def _seconds_between(started: str | None, finished: str | None) -> float | None:
    """Seconds from `started` to `finished` (or now, for a flow still running)."""
    if not started:
        return None
    begin = dt.datetime.fromisoformat(started)
    end = dt.datetime.fromisoformat(finished) if finished else dt.datetime.now(dt.UTC)
    return max(0.0, (end - begin).total_seconds())


LOG_FRAME = re.compile(
    r"^=== meta-orchestrator: unit (?P<id>\S+) attempt (?P<attempt>\d+) (?P<stream>stdout|stderr)"
    r" ===\n(?P<text>.*?)\n=== meta-orchestrator: end ===$",
    re.MULTILINE | re.DOTALL,
)
"""A micro step's output as its slot's launcher copies it into the container's log."""
MAX_LISTED = 10


@dataclass(frozen=True)
class UnitLog:
    unit: str
    attempt: int
    pod: str
    container: str
    chunks: AsyncIterator[tuple[str, str]]
    """("out" | "err", text) as the log gives them; a pod's log merges both into "out"."""


@dataclass(frozen=True)
class _Echoed:
    pod: str
    container: str
    streams: dict[str, str] = field(default_factory=dict)


async def unit_log(
    api: KubeApi,
    namespace: str,
    name: str,
    unit: str | None,
    attempt: int | None,
    *,
    follow: bool,
) -> UnitLog:
    """The log of one attempt of a unit of MetaFlow `name` (by default its failed unit, and
    its last attempt): a macro step's from its pod, a micro step's from the slot container of
    the micro pod that ran it (where its launcher copied it when it ended)."""
    where = f"metaflow {namespace}/{name}"
    try:
        resource = await api.get_flow(namespace, name)
    except NotFound:
        raise UserError(Fault(where, "", "no such MetaFlow")) from None
    pods = await api.list_pods(namespace, f"{LABEL_FLOW}={name}")
    steps: dict[str, dict[int, str]] = {}
    micro: list[Mapping[str, Any]] = []
    for pod in pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        uid = (meta.get("annotations") or {}).get(ANNOTATION_UNIT_ID)
        if labels.get(LABEL_SCOPE) == "micro":
            micro.append(pod)
        elif uid is not None:
            steps.setdefault(uid, {})[int(labels.get(LABEL_ATTEMPT, 1))] = meta["name"]
    given = unit or (resource.get("status") or {}).get("failedUnit")
    if given in steps:
        return _step_log(api, namespace, where, given, steps[given], attempt, follow=follow)
    echoed = await _echoed(api, namespace, micro)
    known = sorted({*steps, *echoed})
    if given is None:
        raise UserError(Fault(where, "", f"name a unit; its units: {_listed(known)}"))
    matches = [uid for uid in known if uid == given or uid.endswith("/" + given)]
    if len(matches) > 1:
        reason = f"{given!r} names {len(matches)} units; give one of: {_listed(matches)}"
        raise UserError(Fault(where, "", reason))
    if not matches:
        for section_pod in micro:
            section = section_pod["metadata"]["annotations"][ANNOTATION_UNIT_ID]
            if given.startswith(section + "/"):
                pod_name = section_pod["metadata"]["name"]
                reason = (
                    f"unit {given} ran, or runs, in micro pod {pod_name}, and "
                    "its output is not in a slot's log yet (it goes there when the step ends)"
                )
                raise UserError(Fault(where, "", reason))
        strategy = strategy_of(resource.get("spec") or {})
        if strategy:
            reason = (
                f"no pod of unit {given!r} is left: the flow's pods are collected "
                f"(spec.podGC.strategy {strategy}), each deleted with its log once it ended and "
                f"its unit was journaled (`meta status {name}` tells how each unit ended)"
            )
            raise UserError(Fault(where, "", reason))
        reason = f"no unit {given!r} has a pod or a log; its units: {_listed(known)}"
        raise UserError(Fault(where, "", reason))
    (uid,) = matches
    if uid in steps:
        return _step_log(api, namespace, where, uid, steps[uid], attempt, follow=follow)
    attempts = echoed[uid]
    chosen = _attempt(where, uid, attempts, attempt)
    found = attempts[chosen]
    return UnitLog(uid, chosen, found.pod, found.container, _texts(found.streams))


def _step_log(
    api: KubeApi,
    namespace: str,
    where: str,
    uid: str,
    pods: Mapping[int, str],
    attempt: int | None,
    *,
    follow: bool,
) -> UnitLog:
    chosen = _attempt(where, uid, pods, attempt)
    pod = pods[chosen]
    return UnitLog(
        uid, chosen, pod, "step", _merged(api.read_log(namespace, pod, "step", follow=follow))
    )


def _attempt(where: str, uid: str, attempts: Mapping[int, Any], attempt: int | None) -> int:
    chosen = max(attempts) if attempt is None else attempt
    if chosen not in attempts:
        listed = ", ".join(str(n) for n in sorted(attempts))
        raise UserError(
            Fault(where, "", f"unit {uid} has no attempt {chosen}; its attempts: {listed}")
        )
    return chosen


async def _echoed(
    api: KubeApi, namespace: str, pods: list[Mapping[str, Any]]
) -> dict[str, dict[int, _Echoed]]:
    """The micro steps' outputs found in the slot containers' logs of these pods, by unit and
    attempt; a later attempt of a micro pod replaces what an earlier one ran."""
    found: dict[str, dict[int, _Echoed]] = {}
    pods = sorted(pods, key=lambda pod: int(pod["metadata"]["labels"].get(LABEL_ATTEMPT, 1)))
    for pod in pods:
        name = pod["metadata"]["name"]
        restarted = {
            status["name"]
            for status in (pod.get("status") or {}).get("containerStatuses") or []
            if status.get("restartCount")
        }
        for container in (pod.get("spec") or {}).get("containers", []):
            slot = container["name"]
            if not slot.startswith("slot-"):
                continue
            # A slot whose image was swapped was restarted: what it ran before is in the log
            # of the container it replaced.
            for previous in (True, False) if slot in restarted else (False,):
                try:
                    text = "".join(
                        [c async for c in api.read_log(namespace, name, slot, previous=previous)]
                    )
                except ApiFailed:
                    # Not started yet, or gone: it holds no step's output.
                    continue
                for frame in LOG_FRAME.finditer(text):
                    by_attempt = found.setdefault(frame["id"], {})
                    echoed = by_attempt.setdefault(int(frame["attempt"]), _Echoed(name, slot))
                    echoed.streams[frame["stream"]] = frame["text"]
    return found


def _listed(units: list[str]) -> str:
    shown = ", ".join(units[:MAX_LISTED]) or "(none)"
    more = len(units) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


async def _merged(chunks: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    async for chunk in chunks:
        yield "out", chunk


async def _texts(streams: Mapping[str, str]) -> AsyncIterator[tuple[str, str]]:
    for stream in ("stdout", "stderr"):
        if streams.get(stream):
            yield stream[3:], streams[stream]
