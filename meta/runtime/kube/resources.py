"""MetaFlow resources from flow files (`meta apply`) and their status in words (`meta status`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from meta.errors import Fault, InputFault
from meta.flow.crd import GROUP, KIND, VERSION
from meta.flow.files import display_path
from meta.flow.model import FileInput
from meta.flow.parse import read_document
from meta.plan.inputs import is_json_lines, iter_json_lines, read_json
from meta.plan.plan import Plan
from meta.runtime.kube.api import Conflict, KubeApi

MAX_INLINE_BYTES = 1024 * 1024
"""etcd keeps objects of at most 1.5 MiB; inputs beyond this belong on a volume."""


def flow_resource(plan: Plan, namespace: str) -> dict[str, Any]:
    """The MetaFlow resource of a planned flow file, with its file inputs inlined as values,
    so the resource carries everything it reads."""
    flow = plan.flow
    document = read_document(flow.source)
    spec = dict(document["spec"])
    inputs: dict[str, Any] = {}
    for name, given in plan.inputs.items():
        if isinstance(given, FileInput):
            value = (
                list(iter_json_lines(given.path))
                if is_json_lines(given.path)
                else read_json(given.path)
            )
            inputs[name] = {"value": value}
        else:
            inputs[name] = {"value": given.value}
    if inputs:
        spec["inputs"] = inputs
    size = len(json.dumps(inputs))
    if size > MAX_INLINE_BYTES:
        raise InputFault(
            Fault(
                display_path(flow.source),
                "/spec/inputs",
                f"the inputs hold {size} bytes; a MetaFlow resource carries at most "
                f"{MAX_INLINE_BYTES} (put large data on the operator's data volume)",
            )
        )
    metadata: dict[str, Any] = {"name": flow.name, "namespace": namespace}
    for key in ("labels", "annotations"):
        if key in document["metadata"]:
            metadata[key] = document["metadata"][key]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": spec,
    }


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
