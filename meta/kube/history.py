"""Every attempt of a MetaFlow's units, as `meta status` shows them: read from the flow's
journal, whose records are one per ended attempt (start, end, exit code, reason, stderr tail).
While the flow runs (or when its journal was not compacted) that is its chunks; once compacted,
the ConfigMap the cluster keeps, which holds every attempt of the units that were retried or did
not finish for good, up to a bound the status counts (see `journal.compact`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meta.engine.records import ATTEMPT_ENDS, UnitRecord, attempt_entry
from meta.kube.api import ApiFailed, KubeApi, NotFound
from meta.kube.controller.journal import KEPT_BYTES, RECORD_FIELDS, chunk_name, kept_name
from meta.kube.types import FlowOwner

KEPT_KIB = KEPT_BYTES // 1024


@dataclass(frozen=True)
class Histories:
    attempts: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    """By unit id, its ended attempts in order (`attempt_entry`'s shape)."""
    names: Mapping[str, str] = field(default_factory=dict)
    missing: str = ""
    """Why some attempts are not here (empty when none is missing)."""
    archive: str = ""
    """Where in the store the whole journal is, once compacted (then units that succeeded at
    their first attempt have no record here)."""


async def flow_histories(api: KubeApi, resource: Mapping[str, Any]) -> Histories:
    """The attempts the journal of MetaFlow `resource` holds. The chunks are probed by name
    (the status names them at most once a second, so it may lag a new one), then the kept
    ConfigMap; a record read twice (a flow compacted, its chunks not yet deleted) counts once."""
    meta = resource["metadata"]
    namespace = meta["namespace"]
    owner = FlowOwner(namespace, meta["name"], meta.get("uid", ""))
    seen: set[tuple[str, int, float]] = set()
    attempts: dict[str, list[dict[str, Any]]] = {}
    names: dict[str, str] = {}
    index = 0
    try:
        while True:
            text = await _text(api, namespace, chunk_name(owner, index))
            if text is None:
                break
            _add(text, seen, attempts, names)
            index += 1
        kept = await _text(api, namespace, kept_name(owner))
        if kept is not None:
            _add(kept, seen, attempts, names)
    except ApiFailed as failed:
        return Histories(attempts, names, f"cannot read the flow's journal: {failed}")
    for history in attempts.values():
        history.sort(key=lambda entry: entry["startedAt"])
    compacted = (resource.get("status") or {}).get("journalCompacted") or {}
    return Histories(attempts, names, _missing(resource), str(compacted.get("path") or ""))


async def _text(api: KubeApi, namespace: str, name: str) -> str | None:
    try:
        found = await api.get_config_map(namespace, name)
    except NotFound:
        return None
    data: Mapping[str, str] = found.get("data") or {}
    return "".join(data[key] for key in sorted(data))


def _add(
    text: str,
    seen: set[tuple[str, int, float]],
    attempts: dict[str, list[dict[str, Any]]],
    names: dict[str, str],
) -> None:
    for line in text.splitlines():
        entry = json.loads(line)
        if entry.get("state") not in ATTEMPT_ENDS:
            continue
        record = UnitRecord(**{name: entry[name] for name in RECORD_FIELDS if name in entry})
        key = (record.id, record.attempts, record.started_at)
        if key in seen:
            continue
        seen.add(key)
        attempts.setdefault(record.id, []).append(attempt_entry(record))
        names[record.id] = record.name


def _missing(resource: Mapping[str, Any]) -> str:
    """What a compacted journal left out of the cluster, said with where it all is."""
    compacted = (resource.get("status") or {}).get("journalCompacted")
    if compacted is None:
        return ""
    where = f"every attempt is in the store, at {compacted.get('path')}"
    if "notKept" not in compacted:
        # Compacted by an operator that kept no attempts of units that finished for good.
        return f"the cluster kept only the attempts of units that did not succeed; {where}"
    left = compacted["notKept"]
    if not left:
        return ""
    return f"{left} attempt records did not fit in the cluster's journal ({KEPT_KIB} KiB); {where}"
