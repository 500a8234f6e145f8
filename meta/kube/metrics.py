"""The operator's Prometheus metrics: one registry, served on `/metrics` by `serve`.

Every metric of the operator is defined here and nowhere else; the modules that measure (the API
adapter, the rate limit, the journal, the status reporter, the operator's watches) call the
functions below. What is derived from the cluster (flows by phase, pods live per flow) comes
from the watch events the operator receives anyway, so it costs no API call, and a standby
replica (which watches but does not run flows) shows the same counts as the active one.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from meta.kube.types import LABEL_FLOW

REGISTRY = CollectorRegistry()
"""The operator's registry (not prometheus_client's global one): what `/metrics` serves."""
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Invalid")
"""A MetaFlow's phases; Pending is a flow no operator has written a status for yet."""

UNITS_STARTED = Counter(
    "meta_units_started", "Attempts at units started (each retry counts).", registry=REGISTRY
)
UNITS_FINISHED = Counter(
    "meta_units_finished",
    "Units ended, by outcome (succeeded, failed: the last attempt failed, cancelled).",
    ["outcome"],
    registry=REGISTRY,
)
UNITS_RETRIED = Counter(
    "meta_units_retried", "Failed attempts followed by another attempt.", registry=REGISTRY
)
UNIT_SECONDS = Histogram(
    "meta_unit_duration_seconds",
    "From an attempt's start to its end, by outcome.",
    ["outcome"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600),
    registry=REGISTRY,
)
POD_START_SECONDS = Histogram(
    "meta_pod_create_to_running_seconds",
    "From a pod's creation to its first container running (timestamps of the pod's status).",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)
SCHEMAS = Counter(
    "meta_schemas",
    "MetaSchema specs handled, by outcome (generated: a new MetaFlow; found: its MetaFlow "
    "existed; refused: no flow).",
    ["outcome"],
    registry=REGISTRY,
)
GENERATE_SECONDS = Histogram(
    "meta_schema_generate_seconds",
    "Running the generators on one MetaSchema's spec, in its worker (refusals included).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
API_CALLS = Counter(
    "meta_api_calls",
    "Calls to the API server through the operator's client, by verb and HTTP code (2xx for a "
    "success, 0 for no answer); kopf's own watches are not counted.",
    ["verb", "code"],
    registry=REGISTRY,
)
THROTTLED_SECONDS = Counter(
    "meta_api_throttled_seconds",
    "Time calls spent waiting for the client-side QPS budget (--qps, --burst).",
    registry=REGISTRY,
)
JOURNAL_FLUSHES = Counter(
    "meta_journal_flushes",
    "Batches of finished units written to flows' journals, by result (written, refused).",
    ["result"],
    registry=REGISTRY,
)


def unit_started() -> None:
    UNITS_STARTED.inc()


def unit_finished(
    state: str, started_at: float, finished_at: float | None, retrying: bool, resumed: bool
) -> None:
    """An attempt's end as the engine reports it; a unit an earlier session finished (resumed)
    ran nowhere now and is not counted."""
    if resumed:
        return
    if retrying:
        UNITS_RETRIED.inc()
        outcome = "retried"
    else:
        UNITS_FINISHED.labels(state).inc()
        outcome = state
    if finished_at is not None:
        UNIT_SECONDS.labels(outcome).observe(max(0.0, finished_at - started_at))


def api_call(verb: str, code: int) -> None:
    API_CALLS.labels(verb, "2xx" if 200 <= code < 300 else str(code)).inc()


def throttled(seconds: float) -> None:
    if seconds > 0:
        THROTTLED_SECONDS.inc(seconds)


def journal_flush(written: bool) -> None:
    JOURNAL_FLUSHES.labels("written" if written else "refused").inc()


class _Flows(Collector):
    """MetaFlows by phase, as their watch events show them."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def observe(self, kind: str | None, flow: Mapping[str, Any]) -> None:
        meta = flow.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        with self._lock:
            if kind == "DELETED":
                self._phases.pop(key, None)
            else:
                self._phases[key] = str((flow.get("status") or {}).get("phase") or "Pending")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("meta_flows", "MetaFlows by phase.", labels=["phase"])
        with self._lock:
            phases = list(self._phases.values())
        for phase in sorted({*PHASES, *phases}):
            family.add_metric([phase], phases.count(phase))
        yield family


class _Pods(Collector):
    """The operator's pods not yet ended, per flow, as their watch events show them; and, for
    each pod first seen before it ran, how long it took from its creation to running."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, str], str] = {}
        self._waiting: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def observe(self, kind: str | None, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        phase = status.get("phase") or "Pending"
        started = _first_start(status)
        with self._lock:
            if kind == "DELETED" or phase in ("Succeeded", "Failed"):
                self._live.pop(key, None)
            else:
                self._live[key] = str((meta.get("labels") or {}).get(LABEL_FLOW, ""))
            if started is None:
                if kind != "DELETED":
                    self._waiting.add(key)
                return
            if key not in self._waiting:
                return
            self._waiting.discard(key)
        created = _time(meta.get("creationTimestamp"))
        if created is not None:
            POD_START_SECONDS.observe(max(0.0, started - created))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "meta_pods_live", "Pods of flows not yet ended, per flow.", labels=["namespace", "flow"]
        )
        with self._lock:
            counts: dict[tuple[str, str], int] = {}
            for (namespace, _), flow in self._live.items():
                counts[namespace, flow] = counts.get((namespace, flow), 0) + 1
        for (namespace, flow), count in sorted(counts.items()):
            family.add_metric([namespace, flow], count)
        yield family


def _first_start(status: Mapping[str, Any]) -> float | None:
    """When the pod's first container started running, if one has."""
    stamps = []
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for value in (state.get("running"), state.get("terminated")):
            stamp = _time((value or {}).get("startedAt"))
            if stamp is not None:
                stamps.append(stamp)
    return min(stamps, default=None)


def _time(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


FLOWS = _Flows()
PODS = _Pods()
REGISTRY.register(FLOWS)
REGISTRY.register(PODS)


def serve(port: int, address: str = "") -> None:
    """Serve `/metrics` on a thread of this process (port 0: not at all)."""
    if port:
        start_http_server(port, address or "0.0.0.0", registry=REGISTRY)
