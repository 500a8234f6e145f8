"""One active operator among its replicas: a coordination.k8s.io Lease, held as client-go's
leader election holds it.

A replica that does not hold the Lease stands by: it tries again every `retry` seconds, and takes
the Lease once its holder has not renewed it for `duration` seconds (as this replica saw the
record change, on its own clock: no clocks are compared) or has released it. Every write names
the resourceVersion it read, so of two replicas trying at once one gets a Conflict and stays
standing by. The holder renews every `retry` seconds; one that has not renewed for
`renew_deadline` seconds (less than `duration`, so before anyone else may take the Lease) has
lost it and must stop writing at once (`lost`). A holder that stops gracefully releases the
Lease, so a standby takes over without waiting for it to expire.

Chosen over kopf's peering, which is not a lock: replicas of the same priority all pause, and
its docs say two may run at once for a moment. A Lease written with optimistic concurrency
leaves at most one holder at any time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meta.kube.api import ApiFailed, Conflict, KubeApi, NotFound

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_LEASE = "meta-orchestrator-operator"


def own_namespace() -> str:
    """The namespace of this pod (its ServiceAccount's), or `default` outside a cluster."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as found:
            return found.read().strip() or "default"
    except OSError:
        return "default"


def _identity() -> str:
    # The pod's name (its hostname), and something of this process: a restarted container
    # is a new candidate, not the holder that stopped renewing.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str = DEFAULT_LEASE
    identity: str = field(default_factory=_identity)
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Leadership:
    """The Lease, held or waited for. `run` campaigns, then renews until it fails to: then
    `lost` is set and `run` returns. `acquired` is set while this replica holds it."""

    def __init__(
        self, api: KubeApi, settings: LeaseSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api = api
        self.settings = settings
        self.clock = clock
        self.acquired = asyncio.Event()
        self.lost = asyncio.Event()
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = 0.0

    async def run(self) -> None:
        s = self.settings
        log.info("lease %s/%s: standing by as %s", s.namespace, s.name, s.identity)
        while not await self._bounded(s.retry * 2):
            await asyncio.sleep(s.retry)
        self.acquired.set()
        log.info("lease %s/%s: acquired by %s", s.namespace, s.name, s.identity)
        renewed = self.clock()
        while True:
            await asyncio.sleep(s.retry)
            left = renewed + s.renew_deadline - self.clock()
            if left > 0 and await self._bounded(left):
                renewed = self.clock()
            elif self.clock() - renewed >= s.renew_deadline:
                self.acquired.clear()
                self.lost.set()
                log.error("lease %s/%s: not renewed in time; lost", s.namespace, s.name)
                return

    async def release(self) -> None:
        """Hand the Lease back (a graceful stop), so that a standby takes it at once."""
        if not self.acquired.is_set():
            return
        self.acquired.clear()
        s = self.settings
        try:
            lease = await self.api.get_lease(s.namespace, s.name)
            if (lease.get("spec") or {}).get("holderIdentity") != s.identity:
                return
            lease["spec"] = {
                **lease["spec"],
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "renewTime": _now(),
            }
            await self.api.replace_lease(s.namespace, lease)
            log.info("lease %s/%s: released by %s", s.namespace, s.name, s.identity)
        except ApiFailed as exc:
            log.warning("lease %s/%s: not released (%s); it expires", s.namespace, s.name, exc)

    async def _bounded(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                return await self._try()
        except TimeoutError:
            return False

    async def _try(self) -> bool:
        """Take or renew the Lease: True when this replica holds it afterwards."""
        s = self.settings
        try:
            lease = await self.api.get_lease(s.namespace, s.name)
        except NotFound:
            return await self._create()
        except ApiFailed as exc:
            log.warning("lease %s/%s: cannot read it (%s)", s.namespace, s.name, exc)
            return False
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._seen:
            self._seen, self._seen_at = record, self.clock()
        lasts = spec.get("leaseDurationSeconds") or s.duration
        if holder and holder != s.identity and self.clock() < self._seen_at + lasts:
            return False
        now = _now()
        transitions = int(spec.get("leaseTransitions") or 0)
        lease["spec"] = {
            "holderIdentity": s.identity,
            "leaseDurationSeconds": int(s.duration),
            "acquireTime": spec.get("acquireTime") if holder == s.identity else now,
            "renewTime": now,
            "leaseTransitions": transitions if holder == s.identity else transitions + 1,
        }
        try:
            await self.api.replace_lease(s.namespace, lease)
        except Conflict:
            return False
        except ApiFailed as exc:
            log.warning("lease %s/%s: cannot write it (%s)", s.namespace, s.name, exc)
            return False
        return True

    async def _create(self) -> bool:
        s = self.settings
        now = _now()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": int(s.duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            await self.api.create_lease(s.namespace, body)
        except Conflict:
            return False
        except ApiFailed as exc:
            log.warning("lease %s/%s: cannot create it (%s)", s.namespace, s.name, exc)
            return False
        return True
