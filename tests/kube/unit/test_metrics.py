"""The operator's Prometheus metrics: what moves them, and `/metrics` served over HTTP."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from meta.kube import metrics
from meta.kube.ratelimit import RateLimit


def value(name: str, **labels: str) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def pod(name: str, phase: str, started: str | None = None) -> dict[str, Any]:
    state = {"running": {"startedAt": started}} if started else {"waiting": {}}
    return {
        "metadata": {
            "namespace": "team",
            "name": name,
            "labels": {"meta-orchestrator.io/flow": "f"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": {"phase": phase, "containerStatuses": [{"name": "step", "state": state}]},
    }


def test_pods_live_per_flow_and_their_time_from_creation_to_running() -> None:
    before = value("meta_pod_create_to_running_seconds_count")
    seconds = value("meta_pod_create_to_running_seconds_sum")
    metrics.PODS.observe("ADDED", pod("p1", "Pending"))
    metrics.PODS.observe("ADDED", pod("p2", "Pending"))
    assert value("meta_pods_live", namespace="team", flow="f") == 2
    metrics.PODS.observe("MODIFIED", pod("p1", "Running", "2026-01-01T00:00:03Z"))
    assert value("meta_pod_create_to_running_seconds_count") == before + 1
    assert value("meta_pod_create_to_running_seconds_sum") == seconds + 3
    metrics.PODS.observe("MODIFIED", pod("p1", "Succeeded", "2026-01-01T00:00:03Z"))
    metrics.PODS.observe("DELETED", pod("p2", "Pending"))
    assert value("meta_pods_live", namespace="team", flow="f") == 0
    # A pod first seen running (adopted after a restart) says nothing of how long it took.
    metrics.PODS.observe(None, pod("p3", "Running", "2026-01-01T05:00:00Z"))
    assert value("meta_pod_create_to_running_seconds_count") == before + 1


def test_flows_by_phase_follow_their_status() -> None:
    def flow(name: str, phase: str | None) -> dict[str, Any]:
        status = {"phase": phase} if phase else {}
        return {"metadata": {"namespace": "ns-flows", "name": name}, "status": status}

    running = value("meta_flows", phase="Running")
    metrics.FLOWS.observe("ADDED", flow("a", None))
    assert value("meta_flows", phase="Pending") >= 1
    metrics.FLOWS.observe("MODIFIED", flow("a", "Running"))
    assert value("meta_flows", phase="Running") == running + 1
    metrics.FLOWS.observe("MODIFIED", flow("a", "Failed"))
    assert value("meta_flows", phase="Running") == running
    metrics.FLOWS.observe("DELETED", flow("a", "Failed"))
    assert value("meta_flows", phase="Invalid") == 0


def test_units_started_finished_retried_and_their_durations() -> None:
    started = value("meta_units_started_total")
    failed = value("meta_units_finished_total", outcome="failed")
    retried = value("meta_units_retried_total")
    count = value("meta_unit_duration_seconds_count", outcome="succeeded")
    metrics.unit_started()
    metrics.unit_finished("failed", 10.0, 12.0, retrying=True, resumed=False)
    metrics.unit_started()
    metrics.unit_finished("succeeded", 12.5, 14.0, retrying=False, resumed=False)
    metrics.unit_finished("succeeded", 0.0, 1.0, retrying=False, resumed=True)
    assert value("meta_units_started_total") == started + 2
    assert value("meta_units_retried_total") == retried + 1
    assert value("meta_units_finished_total", outcome="failed") == failed
    assert value("meta_unit_duration_seconds_count", outcome="succeeded") == count + 1


def test_time_throttled_by_the_qps_budget_is_counted() -> None:
    async def take(limit: RateLimit, n: int) -> None:
        for _ in range(n):
            await limit.take()

    before = value("meta_api_throttled_seconds_total")
    asyncio.run(take(RateLimit(qps=50, burst=1), 11))
    # Ten calls beyond the burst wait for ten tokens at 50 a second.
    assert value("meta_api_throttled_seconds_total") - before >= 0.18


def test_metrics_are_served_over_http() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve(port, "127.0.0.1")
    metrics.api_call("create", 201)
    metrics.api_call("create", 409)
    metrics.journal_flush(written=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "meta_flows", "meta_pods_live", "meta_units_started", "meta_units_finished",
        "meta_units_retried", "meta_unit_duration_seconds", "meta_pod_create_to_running_seconds",
        "meta_api_calls", "meta_api_throttled_seconds", "meta_journal_flushes",
        "process_cpu_seconds",
    } <= names  # fmt: skip
    assert 'meta_api_calls_total{code="409",verb="create"}' in text
    assert 'meta_api_calls_total{code="2xx",verb="create"}' in text
