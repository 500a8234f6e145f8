"""Every attempt of a MetaFlow's units, as `meta status` shows them: read from the flow's
journal, whose records are one per ended attempt (start, end, exit code, reason, stderr tail).
While the flow runs (or when its journal was not compacted) that is its chunks; once compacted,
the ConfigMap the cluster keeps, which holds every attempt of the units that were retried or did
not finish for good, up to a bound the status counts (see `journal.compact`)."""

from __future__ import annotations

import json
import re
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
    unattempted: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """Asked for every unit: those that made no attempt (skipped, cached), and how each ended
    (`state`, `reason`, `cachedFrom`)."""


async def flow_histories(
    api: KubeApi, resource: Mapping[str, Any], *, every: bool = False
) -> Histories:
    """The attempts the journal of MetaFlow `resource` holds: of the units that were retried
    or did not succeed, or, with `every`, of all. The chunks are probed by name (the status
    names them at most once a second, so it may lag a new one), then the kept ConfigMap; a
    record read twice (a flow compacted, its chunks not yet deleted) counts once."""
    meta = resource["metadata"]
    namespace = meta["namespace"]
    owner = FlowOwner(namespace, meta["name"], meta.get("uid", ""))
    seen: set[tuple[str, int, float]] = set()
    attempts: dict[str, list[dict[str, Any]]] = {}
    names: dict[str, str] = {}
    plain: dict[str, list[str]] = {}
    unattempted: dict[str, dict[str, Any]] | None = {} if every else None
    index = 0
    try:
        while True:
            text = await _text(api, namespace, chunk_name(owner, index))
            if text is None:
                break
            _add(text, seen, attempts, names, None if every else plain, unattempted)
            index += 1
        kept = await _text(api, namespace, kept_name(owner))
        if kept is not None:
            _add(kept, seen, attempts, names, None if every else plain, unattempted)
    except ApiFailed as failed:
        return Histories(attempts, names, f"cannot read the flow's journal: {failed}")
    # A first attempt that succeeded belongs with the attempts of its unit an earlier operator
    # session made (they failed, then the flow was resumed).
    for uid in plain.keys() & attempts.keys():
        _add("\n".join(plain[uid]), seen, attempts, names, None)
    for history in attempts.values():
        history.sort(key=lambda entry: entry["startedAt"])
    compacted = (resource.get("status") or {}).get("journalCompacted") or {}
    archive = str(compacted.get("path") or "")
    return Histories(attempts, names, _missing(resource), archive, unattempted or {})


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
    plain: dict[str, list[str]] | None,
    unattempted: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Add the records of `text`; with `plain`, those of first attempts that succeeded are
    only set aside there, by unit, unparsed; with `unattempted`, how units that made no
    attempt ended."""
    for line in text.splitlines():
        if plain is not None:
            uid = _plain(line)
            if uid is not None:
                plain.setdefault(uid, []).append(line)
                continue
        entry = json.loads(line)
        if entry.get("state") not in ATTEMPT_ENDS:
            if unattempted is not None and "id" in entry:
                unattempted[entry["id"]] = {
                    "state": entry.get("state"),
                    "reason": entry.get("reason") or "",
                    "cachedFrom": entry.get("cached_from") or "",
                }
                names[entry["id"]] = str(entry.get("name") or "")
            continue
        record = UnitRecord(**{name: entry[name] for name in RECORD_FIELDS if name in entry})
        key = (record.id, record.attempts, record.started_at)
        history = attempts.setdefault(record.id, [])
        if key in seen:
            # Read twice, or its attempt's later record (cancelled while waiting to retry):
            # the later one is its last word.
            at = [(e["attempt"], e["startedAt"]) for e in history].index(key[1:])
            history[at] = attempt_entry(record)
            continue
        seen.add(key)
        history.append(attempt_entry(record))
        names[record.id] = record.name


PLAIN = ('"state":"succeeded","attempts":1,', '"resumed":false,"retrying":false,')
"""What the record of a first attempt that succeeded holds, as `record_finished` writes it."""
ID = re.compile(r'\{"id":("(?:[^"\\]|\\.)*")')


def _plain(line: str) -> str | None:
    """The unit of a record of a first attempt that succeeded, found without parsing the
    line (most of a big journal, and parsing all of it took seconds); None for another."""
    # Strings in the line are escaped, so the first bare key found is the record's own; the
    # result (the last field, any JSON) is not looked at.
    head = line[: line.find('"cached_from":')]
    if not all(part in head for part in PLAIN):
        return None
    found = ID.match(line)
    return None if found is None else str(json.loads(found.group(1)))


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
