"""Ends of pods (and of child MetaFlows) from watch events, handed to whoever waits on them.

The operator feeds every event of its pods in (`observe`, `forget`); an attempt awaits
`ended(namespace, name)`. An object that ended before anyone waited is kept until it is asked
for, when someone said it would ask (`expect`, before the object is created or adopted), so no
end is missed and nothing polls; the ends of the others are not kept: an operator that restarts
is told of every pod it ever made, and an ended pod goes on having events, and neither must
grow its memory. `Broker(pod_end)` follows pods, `Broker(flow_end)` child flows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meta.kube.api import LISTED, LISTING

STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""Waiting reasons a step's container does not come back from by itself."""
RETRIED_REASONS = frozenset(
    {"CreateContainerError", "RunContainerError", "CreateContainerConfigError"}
)
"""Of those, the ones a node also gives for a while and then recovers from: the kubelet retries
them, so they count as stuck only when they last `RETRIED_PATIENCE` seconds. A busy runtime's
"context deadline exceeded" and "failed to reserve container name"; the kubelet's race between
two pods that mount subPaths of one volume at once ("failed to create subPath directory",
kubernetes#94198); a Secret applied just after the flow that reads it."""
RETRIED_PATIENCE = 60.0
MAIN_CONTAINERS = frozenset({"step", "quarterback"})


@dataclass(frozen=True)
class PodEnd:
    """How a pod (or a child flow) ended: the exit code, what it said, why it failed, and for a
    flow where its outputs are."""

    code: int
    message: str = ""
    reason: str = ""
    outputs: tuple[tuple[str, str], ...] = ()
    outputs_config_map: str = ""
    """A child flow whose result has many parts names the ConfigMap that lists them."""
    stuck: bool = False
    """The pod has not ended and will not by itself (an image that cannot be pulled)."""
    patience: float = 0.0
    """How long a stuck pod must stay so before it counts as ended (seconds)."""


def pod_end(pod: Mapping[str, Any]) -> PodEnd | None:
    """The end of a pod that has ended (or that cannot start), else None."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    containers = status.get("containerStatuses") or []
    # A micro pod's end is its quarterback's: the slots only ever run the launcher.
    reporting = [c for c in containers if c.get("name") == "quarterback"] or containers
    terminated = next(
        (
            (c.get("state") or {}).get("terminated")
            for c in reporting
            if (c.get("state") or {}).get("terminated")
        ),
        None,
    )
    if phase in ("Succeeded", "Failed"):
        if terminated is not None:
            code = int(terminated.get("exitCode", 0 if phase == "Succeeded" else 1))
            return PodEnd(code, terminated.get("message", "") or "", _why(terminated, code))
        if phase == "Succeeded":
            return PodEnd(0)
        return PodEnd(-1, "", status.get("reason") or status.get("message") or "pod failed")
    # Slots are the quarterback's to look after (a swap it asked for may be pulling); the pod
    # cannot go on when its step, its quarterback or an init container cannot start.
    inits = status.get("initContainerStatuses") or []
    for container in [*inits, *(c for c in containers if c.get("name") in MAIN_CONTAINERS)]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            message = waiting.get("message", "")
            why = f"container {container.get('name')} cannot start: {waiting['reason']} {message}"
            patience = RETRIED_PATIENCE if waiting["reason"] in RETRIED_REASONS else 0.0
            return PodEnd(-1, message, why.rstrip(), stuck=True, patience=patience)
    return None


def _why(terminated: Mapping[str, Any], code: int) -> str:
    reason = terminated.get("reason", "")
    if code == 0 or reason in ("", "Completed", "Error"):
        return ""
    return f"container {reason} (exit code {code})"


def flow_end(flow: Mapping[str, Any]) -> PodEnd | None:
    """The end of a child MetaFlow that has ended, else None."""
    status = flow.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        parts = tuple((str(s), str(u)) for s, u in status.get("outputParts", []))
        return PodEnd(0, "", "", parts, str(status.get("outputPartsConfigMap", "")))
    if phase in ("Failed", "Invalid"):
        unit = status.get("failedUnit")
        why = f"unit {unit} failed" if unit else f"the flow is {phase.lower()}"
        return PodEnd(1, str(status.get("reason", "")), f"child flow: {why}")
    return None


class Broker:
    def __init__(self, end_of: Callable[[Mapping[str, Any]], PodEnd | None] = pod_end) -> None:
        self._end_of = end_of
        self._ended: dict[tuple[str, str], PodEnd] = {}
        self._waiting: dict[tuple[str, str], asyncio.Future[PodEnd]] = {}
        self._holding: dict[tuple[str, str], tuple[PodEnd, asyncio.TimerHandle]] = {}
        """Stuck pods given time to recover: the end they would have, and when it takes effect."""
        self._expected: set[tuple[str, str]] = set()
        """Objects whose end will be asked for."""
        self._seen: set[tuple[str, str]] = set()
        """Of the objects waited on or expected, those an event has shown: one a later listing
        leaves out is gone."""
        self._listed: dict[str, set[tuple[str, str]]] = {}
        """Of those, the ones each listing under way (by namespace, "" for all) has shown."""

    def expect(self, namespace: str, name: str) -> None:
        """Someone will ask for this object's end: keep it if it comes first."""
        self._expected.add((namespace, name))

    def follow(self, kind: str | None, obj: Mapping[str, Any]) -> None:
        """One watch event of this kind (ADDED, MODIFIED, DELETED, None when listed, LISTING
        and LISTED as a listing of `namespace` begins and once it is whole)."""
        if kind == LISTING:
            # A listing that broke off is begun again: only what this one shows counts.
            self._listed.pop(str((obj.get("metadata") or {}).get("namespace") or ""), None)
            return
        if kind == LISTED:
            self._relisted(str((obj.get("metadata") or {}).get("namespace") or ""))
            return
        meta = obj["metadata"]
        if kind == "DELETED":
            self.forget(meta["namespace"], meta["name"])
            return
        self.observe(obj)
        key = (meta["namespace"], meta["name"])
        if kind is None and key in self._seen:
            for namespace in {"", key[0]}:
                self._listed.setdefault(namespace, set()).add(key)

    def _relisted(self, namespace: str) -> None:
        """A listing is whole: what was seen before it and is not in it was deleted while the
        watch was away (its DELETED event is never sent)."""
        listed = self._listed.pop(namespace, set())
        gone = [key for key in self._seen - listed if namespace in ("", key[0])]
        for key in gone:
            self.forget(*key)

    def observe(self, pod: Mapping[str, Any]) -> None:
        """An object was added or changed."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        if key in self._waiting or key in self._expected:
            self._seen.add(key)
        end = self._end_of(pod)
        if end is not None and end.patience > 0:
            self._hold(key, end)
            return
        self._release(key)
        if end is not None:
            self._settle(key, end)

    def _hold(self, key: tuple[str, str], end: PodEnd) -> None:
        held = self._holding.get(key)
        if held is not None:
            self._holding[key] = (end, held[1])  # the latest message, the first deadline
            return
        timer = asyncio.get_running_loop().call_later(end.patience, self._held_too_long, key)
        self._holding[key] = (end, timer)

    def _held_too_long(self, key: tuple[str, str]) -> None:
        end, _ = self._holding.pop(key)
        self._settle(key, end)

    def _release(self, key: tuple[str, str]) -> None:
        held = self._holding.pop(key, None)
        if held is not None:
            held[1].cancel()

    def forget(self, namespace: str, name: str) -> None:
        """A pod was deleted; an attempt still waiting on it has lost its pod."""
        self._release((namespace, name))
        self._settle((namespace, name), PodEnd(-1, "", "deleted before it ended"))
        self._ended.pop((namespace, name), None)
        self._unseen((namespace, name))

    def _settle(self, key: tuple[str, str], end: PodEnd) -> None:
        waiter = self._waiting.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(end)
        elif waiter is None and key in self._expected and key not in self._ended:
            self._ended[key] = end

    async def ended(self, namespace: str, name: str) -> PodEnd:
        key = (namespace, name)
        end = self._ended.pop(key, None)
        if end is not None:
            self._expected.discard(key)
            self._unseen(key)
            return end
        waiter = self._waiting.get(key)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[key] = waiter
        try:
            return await asyncio.shield(waiter)
        finally:
            if waiter.done():
                self._waiting.pop(key, None)
                self._expected.discard(key)
                self._unseen(key)

    def cancel(self, namespace: str, name: str) -> None:
        """Nobody waits on this pod any more (its attempt was stopped)."""
        self._release((namespace, name))
        waiter = self._waiting.pop((namespace, name), None)
        if waiter is not None and not waiter.done():
            waiter.cancel()
        self._ended.pop((namespace, name), None)
        self._expected.discard((namespace, name))
        self._unseen((namespace, name))

    def _unseen(self, key: tuple[str, str]) -> None:
        self._seen.discard(key)
        for listed in self._listed.values():
            listed.discard(key)


@dataclass
class Watches:
    """What the operator's watches feed: its pods, and its MetaFlows (child flows)."""

    pods: Broker = field(default_factory=lambda: Broker(pod_end))
    flows: Broker = field(default_factory=lambda: Broker(flow_end))
