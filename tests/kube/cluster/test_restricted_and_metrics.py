"""Pods in namespaces that enforce the restricted Pod Security Standard (every test namespace
does, see conftest.py): the operator's pods are admitted; a pod the API server refuses fails its
flow with the server's reason. And the operator's `/metrics`, scraped while a flow runs."""

from __future__ import annotations

import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.kube.cluster.conftest import Cluster
from tests.kube.cluster.operating import Operator, apply, wait_phase


@pytest.fixture
def operated(cluster: Cluster, namespace: str, crd: None, tmp_path: Path) -> Iterator[Any]:
    """Start a `meta operator` with these options; stopped after the test."""
    started: list[Operator] = []

    def start(*options: str, metrics_port: int = 0) -> Operator:
        running = Operator(
            cluster, namespace, tmp_path / f"operator-{len(started)}.log", options=options,
            metrics_port=metrics_port,
        )  # fmt: skip
        running.start()
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()
            sys.stderr.write(running.log.read_text(errors="replace")[-3000:])


def steps(name: str, count: int, image: str = "busybox") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "inputs": {"items": {"value": list(range(count))}},
            "root": {
                "name": "each",
                "scope": "macro",
                "pattern": "fanout",
                "maxActive": 3,
                "over": {"input": "items"},
                "visit": {
                    "name": "item-{{ item }}",
                    "run": {"image": image, "command": ["true"]},
                },
            },
        },
    }


def test_the_operators_pods_are_admitted_in_a_restricted_namespace(
    cluster: Cluster, namespace: str, operated: Any
) -> None:
    labels = client.CoreV1Api(cluster.api_client).read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    operated()
    micro = {
        "name": "pod", "scope": "micro", "pattern": "sequence",
        "units": [{"name": "inner", "run": {"image": "busybox", "command": ["true"]}}],
    }  # fmt: skip
    flow = steps("admitted", 2)
    flow["spec"]["root"] = {
        "name": "seq", "scope": "macro", "pattern": "sequence",
        "units": [flow["spec"]["root"], micro],
    }  # fmt: skip
    apply(cluster, namespace, flow)
    status = wait_phase(cluster, namespace, "admitted", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status.get("reason")


def test_a_pod_the_namespace_refuses_fails_the_flow_with_the_servers_reason(
    cluster: Cluster, namespace: str, operated: Any
) -> None:
    """Root (`--run-as-user 0`, for namespaces that allow it) is refused where the namespace
    enforces restricted: the unit's attempt fails with the API server's message, at once."""
    operated("--run-as-user", "0")
    apply(cluster, namespace, steps("as-root", 1))
    status = wait_phase(cluster, namespace, "as-root", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Failed"
    assert status["failedUnit"] == "as-root/each/0/item-0"
    assert "403" in status["reason"]
    assert 'violates PodSecurity "restricted:latest"' in status["reason"], status["reason"]
    assert "runAsUser=0" in status["reason"]
    pods = client.CoreV1Api(cluster.api_client).list_namespaced_pod(namespace).items
    assert pods == []


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def test_metrics_move_while_a_flow_runs(cluster: Cluster, namespace: str, operated: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A small budget, so that the flow's calls wait for it.
    operated("--qps", "2", "--burst", "1", metrics_port=port)
    deadline = time.monotonic() + 60
    while True:
        try:
            before = scrape(port)
            break
        except OSError:
            assert time.monotonic() < deadline, "no /metrics within 60 s"
            time.sleep(0.2)
    apply(cluster, namespace, steps("measured", 6, "kwok.meta-orchestrator.io/slow"))
    seen_running = seen_live = 0.0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        during = scrape(port)
        seen_running = max(seen_running, total(during, "meta_flows", phase="Running"))
        seen_live = max(seen_live, total(during, "meta_pods_live", flow="measured"))
        if total(during, "meta_flows", phase="Succeeded") >= 1:
            break
        time.sleep(0.3)
    after = scrape(port)
    assert total(after, "meta_flows", phase="Succeeded") == 1
    assert seen_running == 1 and 1 <= seen_live <= 3
    assert total(after, "meta_pods_live", flow="measured") == 0

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("meta_units_started_total") == 6
    assert moved("meta_units_finished_total", outcome="succeeded") == 6
    assert moved("meta_unit_duration_seconds_count", outcome="succeeded") == 6
    assert moved("meta_unit_duration_seconds_sum") >= 6 * 2.5, "slow pods run 3 s each"
    assert moved("meta_pod_create_to_running_seconds_count") >= 1
    assert moved("meta_api_calls_total", verb="create", code="2xx") >= 6
    assert moved("meta_api_calls_total", verb="patch", code="2xx") >= 1
    assert moved("meta_api_throttled_seconds_total") > 0
    assert moved("meta_journal_flushes_total", result="written") >= 1
