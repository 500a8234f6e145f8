"""MetaFlow resources from flow files (`meta apply`) and their status in words (`meta status`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from meta.errors import Fault, InputFault, lookup
from meta.flow.files import display_path
from meta.flow.model import FileInput, Flow, FlowRef, Generate, Input, ValueInput
from meta.flow.parse import read_document
from meta.kube.api import Conflict, KubeApi
from meta.kube.types import GROUP, KIND, VERSION
from meta.plan.inputs import is_json_lines, iter_json_lines, read_json
from meta.plan.plan import Plan, walk_units

MAX_SPEC_BYTES = 1024 * 1024
"""etcd keeps objects of at most 1.5 MiB; inputs beyond this belong on a volume."""


def flow_resource(plan: Plan, namespace: str) -> dict[str, Any]:
    """The MetaFlow resource of a planned flow file, self-contained: every file input (of the
    flow, of its flowRefs, of the flows they reference) embedded in `spec.files` (see
    `_carried`), and every referenced flow embedded in `spec.flows` by its path relative to the
    flow's file."""
    flow = plan.flow
    base = flow.source.parent
    files: dict[str, str] = {}
    document = _carried(read_document(flow.source), flow, plan.inputs, base, files)
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
        for unit in walk_units(flow.root)
        if isinstance(unit, Generate)
        for _, source in unit.sources()
        if source.input is not None
    }

    def entry(given: Input, as_file: bool) -> dict[str, Any]:
        if isinstance(given, FileInput) and _embed(given.path, root, files):
            return {"path": os.path.relpath(given.path, base)}
        return _input_entry(given, base, as_file)

    if inputs:
        spec["inputs"] = {name: entry(given, name in as_files) for name, given in inputs.items()}
    for ref in (u for u in walk_units(flow.root) if isinstance(u, FlowRef)):
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


def describe_status(resource: Mapping[str, Any]) -> Iterator[str]:
    meta = resource["metadata"]
    status: Mapping[str, Any] = resource.get("status") or {}
    yield f"{meta['namespace']}/{meta['name']}: {status.get('phase', 'Pending')}"
    if "progress" in status:
        yield (
            f"  progress {status['progress']} (succeeded/reached), active {status.get('active', 0)}"
        )
    for item in status.get("conditions", []):
        yield f"  condition {item['type']}={item['status']}: {item.get('message', '')}"
    if status.get("failedUnit"):
        yield f"  failed unit: {status['failedUnit']}"
    if status.get("reason"):
        for line in str(status["reason"]).splitlines():
            yield f"  {line}"
    for section in status.get("sections", []):
        yield (
            f"  section {section['id']}: {section['pattern']} ({section['scope']}), "
            f"peak {section['peakActive']}/{section['maxActive']}, {section['unitsRun']} units"
        )
    if status.get("outputs"):
        yield f"  outputs: {status['outputs']}"
