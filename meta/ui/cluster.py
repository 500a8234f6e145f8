"""`meta ui --kubeconfig ... -n NS`: a namespace's MetaFlows shown as runs, read through the API.

The runs list is each MetaFlow's status, in the shape `meta status` shows it. A run's units
come from three places, read again every FOLLOW_SECONDS while a page watches the run:
- the flow's journal ConfigMaps (the chunks its status names): every finished unit, as the
  operator flushes them (only keys not read before are parsed);
- the flow's pods: a pod Pending or Running is its unit running, and one that has ended ends
  it until the journal's record (flushed in batches) says more (a micro pod is its whole
  section; its containers are the section's slots, shown with the unit);
- the MetaFlow's status: its phase, and once it has ended the peak of each section. Once the
  operator has compacted an ended flow's journal into the store, its ConfigMaps keep only the
  units that did not finish for good: the run's totals then come from the status (which counts
  every unit), and its units are those its pods and the kept records show.
Logs are `meta logs`' own lookup (`meta.kube.apply.unit_log`): a macro step's pod, or the slot
of the micro pod its launcher echoed it to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meta.errors import MetaError
from meta.kube.api import ApiFailed, KubeApi, NotFound
from meta.kube.apply import status_view, unit_log
from meta.kube.controller.reconcile import plan_resource
from meta.kube.types import ANNOTATION_UNIT_ID, LABEL_ATTEMPT, LABEL_FLOW, LABEL_NAME
from meta.ui.model import LOG_TAIL_BYTES, UnitsModel, UnitState
from meta.ui.structure import Structure, structure

FOLLOW_SECONDS = 1.0
ENDED_PHASES = ("succeeded", "failed", "invalid")
LOG_READ_SECONDS = 5.0
"""A detail waits this long at most for one attempt's log."""


class ClusterRuns:
    """The MetaFlows of one namespace."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    async def listing(self) -> tuple[list[dict[str, Any]], list[str]]:
        try:
            flows = await self.api.list_flows(self.namespace)
        except ApiFailed as failed:
            return [], [f"metaflows in {self.namespace}: {failed}"]
        views = [_listed(body) for body in flows]
        views.sort(key=lambda view: view["startedAt"] or float("inf"), reverse=True)
        return views, []

    async def model(self, key: str) -> UnitsModel | None:
        try:
            body = await self.api.get_flow(self.namespace, key)
        except NotFound:
            return None
        return ClusterModel(self.api, body)


def _listed(body: Mapping[str, Any]) -> dict[str, Any]:
    view = status_view(body)
    started = _epoch(view["startedAt"])
    duration = view["durationSeconds"]
    if duration is None and started is not None and view["state"] not in ENDED_PHASES:
        duration = time.time() - started
    return {
        "run": body["metadata"]["name"],
        "flow": view["flow"],
        "state": view["state"],
        "startedAt": started,
        "durationSeconds": None if duration is None else round(duration, 3),
        "units": {state: n for state, n in view["units"].items() if n is not None},
    }


class ClusterModel(UnitsModel):
    """One MetaFlow's units, as its journal, its pods and its status tell them."""

    follow_seconds = FOLLOW_SECONDS

    def __init__(self, api: KubeApi, body: Mapping[str, Any]) -> None:
        self.api = api
        self.namespace = str(body["metadata"]["namespace"])
        self.name = str(body["metadata"]["name"])
        self.body: Mapping[str, Any] = body
        super().__init__(self.name, lambda: _structure(body))
        self.pods: dict[str, dict[str, Any]] = {}
        """The newest pod of each unit that has one, by unit id."""
        self._read_keys: dict[str, set[str]] = {}

    async def load(self) -> set[str]:
        return await self.refresh()

    async def refresh(self) -> set[str]:
        changed: set[str] = set()
        try:
            self.body = await self.api.get_flow(self.namespace, self.name)
        except NotFound:
            self.state = "deleted"
            self.cancel_running(changed)
            return changed
        status: Mapping[str, Any] = self.body.get("status") or {}
        await self._read_journal(status.get("journal") or [], changed)
        pods = await self.api.list_pods(self.namespace, f"{LABEL_FLOW}={self.name}")
        self._read_pods(pods, changed)
        state = str(status.get("phase", "Pending")).lower()
        if state in ENDED_PHASES and self.state not in ENDED_PHASES:
            self.reported_peaks(status.get("sections") or [])
            self.cancel_running(changed)
        self.state = state
        return changed

    async def _read_journal(self, chunks: list[str], changed: set[str]) -> None:
        """Apply the journal keys not read before: a chunk gains keys until it is full."""
        for chunk in chunks:
            read = self._read_keys.setdefault(chunk, set())
            try:
                found = await self.api.get_config_map(self.namespace, chunk)
            except NotFound:
                continue
            data: Mapping[str, str] = found.get("data") or {}
            for key in sorted(set(data) - read):
                read.add(key)
                for line in data[key].splitlines():
                    try:
                        record = json.loads(line)
                        self._apply({**record, "event": "finished"}, changed)
                    except (ValueError, KeyError, TypeError):
                        continue

    def _read_pods(self, pods: list[dict[str, Any]], changed: set[str]) -> None:
        """A unit whose newest pod is Pending or Running runs, in that pod's attempt; one
        whose pod has ended ends with it, until its journal record says more."""
        newest: dict[str, dict[str, Any]] = {}
        for pod in pods:
            uid = (pod["metadata"].get("annotations") or {}).get(ANNOTATION_UNIT_ID)
            if uid is None:
                continue
            if uid not in newest or _attempt_of(pod) >= _attempt_of(newest[uid]):
                newest[uid] = pod
        for uid, pod in newest.items():
            self.pods[uid] = pod
            entry = _pod_entry(uid, pod, self.units.get(uid))
            if entry is not None:
                self._apply(entry, changed)

    async def detail_of(self, uid: str) -> dict[str, Any]:
        unit = self.units[uid]
        attempts: list[dict[str, Any]] = []
        for attempt in range(1, unit.attempt + 1):
            logs = await self._logs(unit, attempt)
            attempts.append({"attempt": attempt, "startedAt": None, **logs})
        if attempts:
            attempts[-1]["startedAt"] = unit.started_at
        return {
            **self.describe(unit),
            "attempts": attempts,
            "input": None,
            "outputs": None,
            "pod": _pod_view(self.pods.get(uid)),
        }

    async def _logs(self, unit: UnitState, attempt: int) -> dict[str, str | None]:
        """The tail of each stream of one attempt, as `meta logs` finds it; None where there
        is none (the pod is gone, or the step has not written yet)."""
        tails: dict[str, str] = {}
        try:
            found = await unit_log(
                self.api, self.namespace, self.name, unit.id, attempt, follow=False
            )

            async def read() -> None:
                async for stream, text in found.chunks:
                    tails[stream] = (tails.get(stream, "") + text)[-LOG_TAIL_BYTES:]

            await asyncio.wait_for(read(), LOG_READ_SECONDS)
        except (MetaError, TimeoutError):
            pass
        return {"stdout": tails.get("stdout"), "stderr": tails.get("stderr")}

    def summary(self) -> dict[str, Any]:
        view = status_view(self.body)
        counts = self.counts()
        if "journalCompacted" in (self.body.get("status") or {}):
            counts["units"] = {
                **counts["units"],
                **{state: n for state, n in view["units"].items() if n is not None},
            }
        return {
            "run": self.name,
            "flow": view["flow"],
            "state": self.state,
            "startedAt": _epoch(view["startedAt"]),
            "finishedAt": _epoch(view["finishedAt"]),
            "failedUnit": view["failedUnit"],
            "reason": view["reason"],
            "outputs": None,
            "where": f"{self.namespace}/{self.name}",
            **counts,
        }


def _structure(body: Mapping[str, Any]) -> Structure:
    """The flow's structure, from the MetaFlow's own spec (its files placed in a scratch
    folder only while it is planned)."""
    with tempfile.TemporaryDirectory(prefix="meta-ui-") as scratch:
        return structure(plan_resource(body, Path(scratch)))


def _pod_view(pod: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A pod as the page shows it: name, phase, node, and each container (a micro pod's
    slots and its quarterback) with its image and state."""
    if pod is None:
        return None
    status: Mapping[str, Any] = pod.get("status") or {}
    states = {c.get("name"): c for c in status.get("containerStatuses") or []}
    containers = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        seen = states.get(container.get("name")) or {}
        state = seen.get("state") or {}
        containers.append(
            {
                "name": container.get("name"),
                "image": seen.get("image") or container.get("image"),
                "state": next(iter(state), "waiting"),
                "restarts": seen.get("restartCount", 0),
            }
        )
    return {
        "name": pod["metadata"]["name"],
        "phase": status.get("phase", "Pending"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "containers": containers,
    }


def _pod_entry(uid: str, pod: Mapping[str, Any], known: UnitState | None) -> dict[str, Any] | None:
    """The journal entry a pod stands for, when it tells more than what is known of its unit:
    that an attempt started, or that it ended (the operator's record of it may come later)."""
    attempt = _attempt_of(pod)
    phase = (pod.get("status") or {}).get("phase", "Pending")
    created = _epoch(pod["metadata"].get("creationTimestamp")) or time.time()
    if phase in ("Pending", "Running"):
        if known is not None and known.attempt >= attempt:
            return None
        return {"event": "started", "id": uid, "attempt": attempt, "at": created}
    if phase not in ("Succeeded", "Failed") or (
        known is not None
        and (known.attempt > attempt or (known.attempt == attempt and known.state != "running"))
    ):
        return None
    labels = pod["metadata"].get("labels") or {}
    return {
        "event": "finished",
        "id": uid,
        "name": labels.get(LABEL_NAME) or uid.rsplit("/", 1)[-1],
        "state": "succeeded" if phase == "Succeeded" else "failed",
        "attempts": attempt,
        "started_at": known.started_at if known is not None else created,
        "finished_at": _ended_at(pod) or time.time(),
    }


def _ended_at(pod: Mapping[str, Any]) -> float | None:
    """When the pod's last container ended."""
    ends = [
        _epoch(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    return max((end for end in ends if end is not None), default=None)


def _attempt_of(pod: Mapping[str, Any]) -> int:
    try:
        return int((pod["metadata"].get("labels") or {}).get(LABEL_ATTEMPT, 1))
    except ValueError:
        return 1


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
