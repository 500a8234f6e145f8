"""MetaFlows from MetaSchemas: a data description dropped into the cluster becomes a flow that runs.

A MetaSchema holds a description (`spec.schema`), its optional x-meta overlay and its data
(inline, or a path on the store). For each spec the operator writes them into a private
folder as `meta watch` pairs them (`NAME.schema.json`, `NAME.meta.json`, `NAME.data.json`),
runs the generators on them in a worker process of its own with a time limit (off the event
loop), and creates the MetaFlow they make: the generated document, carrying the same files in
`spec.files`, owned by the MetaSchema, named after it and a digest of the spec. The same spec
always names the same flow, so an operator that restarts (or a standby that takes over) finds
the flow made before instead of making a second. A changed spec makes a new flow; the earlier
ones are left as they are (running to their end, then kept with their status and outputs)
until the MetaSchema is deleted, which deletes them all. A description no generator accepts
gets condition `Valid=False` with the generators' one-line refusal, a Warning Event, and no flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meta.flow.files import display_path, loads_strict_json, nested_deeper_than
from meta.generate.plugins import Plugins
from meta.generate.worker import generate_in_worker
from meta.kube import metrics
from meta.kube.api import Conflict, KubeApi, NotFound
from meta.kube.controller.status import condition, now
from meta.kube.layout import event_body, schema_flow, short_name
from meta.kube.types import SCHEMA_KIND, FlowOwner, OperatorSettings

MAX_DEPTH = 256
"""Nesting the operator writes out for the generators; a deeper description is refused before
anything recurses over it (published schemas nest a few dozen levels)."""
MAX_FLOW_BYTES = 1024 * 1024
"""As `meta apply` bounds a MetaFlow's spec: etcd keeps objects of at most 1.5 MiB."""
GENERATOR_ANNOTATION = "meta-orchestrator.io/generator"
"""Where the built-in generators name themselves on the flows they make."""


@dataclass(frozen=True)
class Generated:
    document: dict[str, Any]
    generator: str
    files: dict[str, str]


class SchemaFeed:
    """The newest version of each MetaSchema the watch has shown, and a wake-up for the handler
    of each: a change reaches its handler even before kopf's own view of it is updated."""

    def __init__(self) -> None:
        self._latest: dict[str, Mapping[str, Any]] = {}
        self._woken: dict[str, asyncio.Event] = {}
        self._handled: dict[str, int] = {}
        """The generation of each MetaSchema this session handled last: a watch event that
        changes no spec (kopf's finalizer, our own status) must not generate, nor refuse, again
        before the status that says so is seen."""

    def follow(self, kind: str, body: Mapping[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        if kind == "DELETED":
            self._latest.pop(uid, None)
        else:
            self._latest[uid] = body
        woken = self._woken.get(uid)
        if woken is not None:
            woken.set()

    def latest(self, given: Mapping[str, Any]) -> Mapping[str, Any]:
        """The newer of `given` and the last version seen of the same MetaSchema."""
        uid = given["metadata"]["uid"]
        self._woken.setdefault(uid, asyncio.Event()).clear()
        seen = self._latest.get(uid)
        if seen is None or _generation(seen) < _generation(given):
            return given
        return seen

    def unhandled(self, given: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The newest version of this MetaSchema when its spec has not been handled yet."""
        latest = self.latest(given)
        handled = self._handled.get(latest["metadata"]["uid"])
        return None if handled == _generation(latest) else latest

    def handled(self, body: Mapping[str, Any]) -> None:
        self._handled[body["metadata"]["uid"]] = _generation(body)

    async def changed(self, uid: str, stopped: Awaitable[object]) -> None:
        """Until the MetaSchema changes again (or `stopped` is done)."""
        woken = asyncio.ensure_future(self._woken.setdefault(uid, asyncio.Event()).wait())
        stop = asyncio.ensure_future(stopped)
        try:
            await asyncio.wait({woken, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            stop.cancel()

    def forget(self, uid: str) -> None:
        self._latest.pop(uid, None)
        self._woken.pop(uid, None)
        self._handled.pop(uid, None)


def _generation(body: Mapping[str, Any]) -> int:
    return int(body["metadata"].get("generation", 1))


def spec_digest(spec: Mapping[str, Any]) -> str:
    """The same for equal specs, whatever the order of their keys."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def schema_flow_name(schema: str, digest: str) -> str:
    return f"{short_name(schema)}-{digest}"


def schema_file(schema: str) -> str:
    return f"metaschema {schema}"


async def reconcile_schema(
    api: KubeApi, body: Mapping[str, Any], settings: OperatorSettings, plugins: Plugins
) -> str:
    """Bring one MetaSchema's flow in line with its spec: "Generated" (a new MetaFlow),
    "Found" (the spec's flow existed), "Refused" (no flow; Valid=False) or "Unchanged" (this
    generation was handled already)."""
    meta = body["metadata"]
    schema = FlowOwner(meta["namespace"], meta["name"], meta["uid"])
    generation = int(meta.get("generation", 1))
    if (body.get("status") or {}).get("observedGeneration") == generation:
        return "Unchanged"
    spec: Mapping[str, Any] = body.get("spec") or {}
    if nested_deeper_than(spec, MAX_DEPTH):
        reason = f"{schema_file(schema.name)}: /spec: nests deeper than {MAX_DEPTH} levels"
        return await _refuse(api, schema, generation, "TooDeep", reason)
    digest = spec_digest(spec)
    name = schema_flow_name(schema.name, digest)
    try:
        found = await api.get_flow(schema.namespace, name)
        generator = (found["metadata"].get("annotations") or {}).get(GENERATOR_ANNOTATION, "")
        outcome = "Found"
    except NotFound:
        with metrics.GENERATE_SECONDS.time():
            made = await asyncio.to_thread(
                generate_schema_flow, schema.name, spec, settings, plugins
            )
        if isinstance(made, str):
            return await _refuse(api, schema, generation, "Refused", made)
        flow = schema_flow(schema, name, made.document, made.files, digest)
        size = len(json.dumps(flow["spec"]).encode())
        if size > MAX_FLOW_BYTES:
            reason = (
                f"{schema_file(schema.name)}: /spec: the flow with its description and data "
                f"embedded holds {size} bytes; a MetaFlow carries at most {MAX_FLOW_BYTES} "
                "(give the data by its path on the store: dataPath)"
            )
            return await _refuse(api, schema, generation, "TooLarge", reason)
        # Made already by this operator's previous session, or by a replica before it.
        with contextlib.suppress(Conflict):
            await api.create_flow(schema.namespace, flow)
        generator = made.generator
        outcome = "Generated"
        await _event(
            api, schema, "Normal", "Generated", f"generator {generator} made metaflow {name}"
        )
    metrics.SCHEMAS.labels(outcome.lower()).inc()
    message = f"generator {generator} made metaflow {name}"
    await api.patch_schema_status(
        schema.namespace,
        schema.name,
        {
            "observedGeneration": generation,
            "flow": name,
            "generator": generator,
            "reason": None,
            "conditions": [condition("Valid", True, "Generated", message, generation)],
        },
    )
    return outcome


async def _refuse(api: KubeApi, schema: FlowOwner, generation: int, why: str, message: str) -> str:
    """No flow for this spec: a Warning Event, then the status that says why."""
    metrics.SCHEMAS.labels("refused").inc()
    await _event(api, schema, "Warning", "Refused", message)
    await api.patch_schema_status(
        schema.namespace,
        schema.name,
        {
            "observedGeneration": generation,
            "flow": None,
            "generator": None,
            "reason": message[:4096],
            "conditions": [condition("Valid", False, why, message, generation)],
        },
    )
    return "Refused"


async def _event(api: KubeApi, schema: FlowOwner, kind: str, reason: str, message: str) -> None:
    body = event_body(schema, kind, reason, message, now(), about=SCHEMA_KIND)
    await api.create_event(schema.namespace, body)


def generate_schema_flow(
    name: str, spec: Mapping[str, Any], settings: OperatorSettings, plugins: Plugins
) -> Generated | str:
    """The generated flow of a MetaSchema's spec and the files it carries; or why there is
    none, in one line (faults named by the spec's field and the JSON pointer inside it).
    Blocking: the generators run in a forked worker, stopped after `settings.generate_seconds`."""
    where = schema_file(name)
    stems = {"schema": "schema", "overlay": "meta", "data": "data"}
    files: dict[str, str] = {}
    texts: dict[str, str] = {}
    for field, stem in stems.items():
        if field not in spec:
            continue
        value = spec[field]
        if isinstance(value, str):
            # The file's own text: its keys in the order written (an object's order is lost
            # in the API server, and generators follow it), JSON or YAML.
            files[field] = f"{name}.{stem}{'.json' if _is_json(value) else '.yaml'}"
            texts[files[field]] = value
            continue
        if field in ("schema", "overlay") and not isinstance(value, dict):
            return f"{where}: /spec/{field}: must be an object, or the text of its file"
        files[field] = f"{name}.{stem}.json"
        texts[files[field]] = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    if "schema" not in spec:
        return f"{where}: /spec/schema: missing"
    data_path = spec.get("dataPath")
    on_store: Path | None = None
    if data_path is not None and "data" in spec:
        return f"{where}: /spec: give the data inline (data) or by its path (dataPath), not both"
    if data_path is not None:
        parts = str(data_path).split("/")
        if not isinstance(data_path, str) or os.path.isabs(data_path) or ".." in parts:
            return f"{where}: /spec/dataPath: must be a path inside the store (relative, no ..)"
        on_store = Path(settings.store_dir) / data_path
    with tempfile.TemporaryDirectory(prefix="meta-schema-") as folder:
        here = Path(folder)
        for file, text in texts.items():
            (here / file).write_text(text, encoding="utf-8")
        data = here / files["data"] if "data" in files else on_store
        attempt = generate_in_worker(
            plugins,
            here / files["schema"],
            here / f"{name}.flow.yaml",
            data=data,
            seconds=settings.generate_seconds,
            generator=spec.get("generator"),
        )
        if attempt.yaml is None:
            return "; ".join(_named(line, where, here, files) for line in attempt.faults)
        document: dict[str, Any] = yaml.safe_load(attempt.yaml)
        if on_store is not None:
            _absolute(document, os.path.relpath(on_store, here), str(on_store))
    return Generated(document, attempt.generator, texts)


def _named(line: str, where: str, folder: Path, files: Mapping[str, str]) -> str:
    """A fault line about the private folder's files as one about the resource: its JSON path
    into the MetaSchema (`metaschema NAME: /spec/schema/$defs/x: ...`), and the files the reason
    mentions named by their fields."""
    for field, file in files.items():
        for shown in {str(folder / file), display_path(folder / file)}:
            if line.startswith(shown + ": "):
                pointer, _, reason = line[len(shown) + 2 :].partition(": ")
                line = f"{where}: /spec/{field}{'' if pointer == '/' else pointer}: {reason}"
            line = line.replace(shown, f"spec.{field}")
    return line


def _absolute(document: dict[str, Any], relative: str, absolute: str) -> None:
    """Inputs naming the data on the store by its path relative to where the flow was generated
    name it absolutely: the flow runs elsewhere."""
    inputs = (document.get("spec") or {}).get("inputs") or {}
    for entry in inputs.values():
        if isinstance(entry, dict) and entry.get("path") == relative:
            entry["path"] = absolute


def _is_json(text: str) -> bool:
    try:
        loads_strict_json(text)
    except ValueError:
        return False
    return True
