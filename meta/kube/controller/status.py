"""A MetaFlow's status while the operator runs it: small whatever the flow's size.

Counts, the phase, per-section bounds and peaks (the first MAX_SECTIONS), conditions and the
names of the journal chunks; the per-unit detail lives in the journal. Updates are coalesced:
at most one status write per UPDATE_SECONDS, whatever the number of units that changed, and
fewer for a big resource: the API server rewrites the whole object at each status write, and
its CPU grows with the object's size (benchmarks/bench_status_cost.py, on the test plane:
~4 ms for a small MetaFlow, 0.2 s at 115 KB of inline input, 1.3 s at 1.25 MB), so a big spec
written every second would keep it busy all the time. Writes are spaced by PACE_BYTES of the
object a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from typing import Any

from meta.engine.records import SectionRecord, UnitRecord
from meta.kube import metrics
from meta.kube.api import ApiFailed, KubeApi
from meta.kube.types import FlowOwner

MAX_SECTIONS = 200
MAX_CACHED_UNITS = 100
"""Cache hits named in the status (with the run each came from), the first of them."""
UPDATE_SECONDS = 1.0
PACE_BYTES = 32 * 1024
"""Progress writes are at least one second apart per this many bytes of the resource."""
MAX_REASON = 4096
"""As the CRD bounds status.reason."""
MAX_RESULT = 4096
"""The largest root result (as JSON) the status holds; a bigger one is only measured."""
log = logging.getLogger(__name__)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_result(result: Any) -> dict[str, Any]:
    """The status fields of the flow's result: itself when it is small, else its size."""
    if result is None:
        return {}
    size = len(json.dumps(result, separators=(",", ":")).encode())
    return {"result": result} if size <= MAX_RESULT else {"resultBytes": size}


def condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": now(),
        "observedGeneration": generation,
    }


class StatusReporter:
    """An engine Listener that keeps the MetaFlow's status up to date."""

    def __init__(
        self, api: KubeApi, owner: FlowOwner, generation: int, resource_bytes: int = 0
    ) -> None:
        self._api = api
        self._owner = owner
        self._generation = generation
        self.interval = max(UPDATE_SECONDS, resource_bytes / PACE_BYTES)
        """Seconds between progress writes at least (the final one is written at once)."""
        self.active: set[str] = set()
        self.reached: set[str] = set()
        self.succeeded = 0
        self.failed = 0
        self.cancelled = 0
        self.skipped = 0
        self.cached = 0
        """Units not run: an earlier session finished them, or the cache had their outputs."""
        self.cache_hits: list[dict[str, str]] = []
        self.cache_hit_count = 0
        self.sections: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[None] | None = None

    def unit_started(self, record: UnitRecord) -> None:
        metrics.unit_started()
        self.active.add(record.id)
        self.reached.add(record.id)
        self._changed()

    def unit_finished(self, record: UnitRecord) -> None:
        metrics.unit_finished(
            record.state, record.started_at, record.finished_at, record.retrying, record.resumed
        )
        self.active.discard(record.id)
        self.reached.add(record.id)
        if record.state == "skipped":
            self.skipped += 1
        elif record.resumed:
            self.cached += 1
        elif record.state == "cached":
            self.cached += 1
            self.cache_hit_count += 1
            if len(self.cache_hits) < MAX_CACHED_UNITS:
                self.cache_hits.append({"id": record.id, "from": record.cached_from})
        elif record.state == "succeeded":
            self.succeeded += 1
        elif record.state == "failed" and record.finished_at is not None and not record.retrying:
            # A failed attempt followed by a retry is not a failed unit (as locally).
            self.failed += 1
        elif record.state == "cancelled":
            self.cancelled += 1
        self._changed()

    def section_finished(self, record: SectionRecord) -> None:
        if len(self.sections) < MAX_SECTIONS:
            self.sections.append(
                {
                    "id": record.id,
                    "pattern": record.pattern,
                    "scope": record.scope,
                    "maxActive": record.max_active,
                    "peakActive": record.peak_active,
                    "unitsRun": record.units_run,
                    "state": record.state,
                }
            )
        self._changed()

    def _changed(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        self._dirty.set()

    def snapshot(self) -> dict[str, Any]:
        return {
            "progress": f"{self.succeeded + self.cached + self.skipped}/{len(self.reached)}",
            "active": len(self.active),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "skipped": self.skipped,
            "cached": self.cached,
            "cacheHits": self.cache_hit_count,
            "cachedUnits": self.cache_hits,
            "reached": len(self.reached),
            "sections": self.sections,
            "observedGeneration": self._generation,
            **self.extra,
        }

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._inflight = asyncio.ensure_future(self._patch())
            try:
                # Shielded: a write already sent must land before any later one is sent.
                await asyncio.shield(self._inflight)
            except ApiFailed as failed:
                log.warning("status of %s: %s; trying again", self._owner.name, failed)
                self._dirty.set()
            await asyncio.sleep(self.interval)

    async def write(self, **fields: Any) -> None:
        """Write the status now (with these fields set from now on)."""
        self.extra.update(fields)
        await self._patch()

    async def _patch(self) -> None:
        status = self.snapshot()
        if isinstance(status.get("reason"), str):
            status["reason"] = status["reason"][:MAX_REASON]
        await self._api.patch_flow_status(self._owner.namespace, self._owner.name, status)

    async def close(self) -> None:
        """Stop the coalescing writer, after the write it has under way (so that no earlier
        status lands after the final one)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight is not None:
            await asyncio.gather(self._inflight, return_exceptions=True)
            self._inflight = None
