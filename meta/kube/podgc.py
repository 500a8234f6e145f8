"""Pod garbage collection (`spec.podGC.strategy`): deleting a flow's ended pods, so that a
flow of 100,000 units does not leave 100,000 pods for the API server, etcd, the node and every
watch to hold.

An ended pod is its unit's record until the journal has its line (a restarted operator adopts
the pod instead of running the unit again): a pod is deleted only once the journal says the
batch holding its unit is in the cluster (`PodCollector.journaled`). What a crash leaves
behind (a record written, its pod not yet deleted) goes with the sweep when the flow ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from meta.kube.api import ApiFailed, KubeApi
from meta.kube.types import LABEL_FLOW

ON_POD_COMPLETION = "OnPodCompletion"
ON_POD_SUCCESS = "OnPodSuccess"
ON_FLOW_COMPLETION = "OnFlowCompletion"
ON_FLOW_SUCCESS = "OnFlowSuccess"
DELETERS = 4
"""Deletions in flight at once (each is an API call on a worker thread)."""
log = logging.getLogger(__name__)


class PodCollector:
    """Deletes each ended pod of one flow once its unit is journaled, as the strategy says
    (OnPodCompletion: every one; OnPodSuccess: the ones that succeeded; else none before the
    flow ends)."""

    def __init__(self, api: KubeApi, namespace: str, flow: str, strategy: str) -> None:
        self._api = api
        self._namespace = namespace
        self._flow = flow
        self._strategy = strategy
        self._ended: dict[str, list[str]] = {}
        """Pods ended and waiting for their unit's record, by unit id (a retried unit has
        one per attempt)."""
        self._doomed: asyncio.Queue[str] = asyncio.Queue()
        self._deleters: list[asyncio.Task[None]] = []
        self.deleted = 0

    def pod_ended(self, unit_id: str, pod: str, succeeded: bool) -> None:
        if self._strategy == ON_POD_COMPLETION or (self._strategy == ON_POD_SUCCESS and succeeded):
            self._ended.setdefault(unit_id, []).append(pod)

    def journaled(self, unit_ids: Sequence[str]) -> None:
        """These units' records are in the cluster: their ended pods may go."""
        for unit_id in unit_ids:
            for pod in self._ended.pop(unit_id, ()):
                self._doomed.put_nowait(pod)
        if not self._doomed.empty() and not self._deleters:
            loop = asyncio.get_running_loop()
            self._deleters = [loop.create_task(self._delete()) for _ in range(DELETERS)]

    async def _delete(self) -> None:
        while True:
            pod = await self._doomed.get()
            try:
                # Ended: no grace to give. A pod that cannot be deleted now goes with the sweep.
                await self._api.delete_pod(self._namespace, pod, 0)
                self.deleted += 1
            except ApiFailed as failed:
                log.warning("pod GC: %s", failed)
            finally:
                self._doomed.task_done()

    async def finish(self, phase: str) -> None:
        """The flow has ended in `phase`, its journal written and its status final: finish the
        deletions asked for, then sweep."""
        await self.close(wait=True)
        await sweep(self._api, self._namespace, self._flow, self._strategy, phase)

    async def close(self, wait: bool = False) -> None:
        """Stop deleting (with `wait`, once the deletions asked for are done); the pods of units
        still waiting for their record stay: they are the record."""
        if wait and self._deleters:
            await self._doomed.join()
        for deleter in self._deleters:
            deleter.cancel()
        for deleter in self._deleters:
            with contextlib.suppress(asyncio.CancelledError):
                await deleter
        self._deleters = []


def strategy_of(spec: Mapping[str, Any]) -> str:
    """A MetaFlow spec's `podGC.strategy` in the flow language's names, or "" (keep pods)."""
    return str((spec.get("podGC") or {}).get("strategy", "")).replace("OnWorkflow", "OnFlow")


async def sweep(api: KubeApi, namespace: str, flow: str, strategy: str, phase: str) -> None:
    """Once the flow has ended (its journal written, its status final): delete its pods as the
    strategy says, in one call."""
    if not strategy or (strategy == ON_FLOW_SUCCESS and phase != "Succeeded"):
        return
    succeeded_only = strategy == ON_POD_SUCCESS
    try:
        await api.delete_pods(namespace, f"{LABEL_FLOW}={flow}", succeeded_only=succeeded_only)
    except ApiFailed as failed:
        log.warning("pod GC of flow %s/%s: %s", namespace, flow, failed)
