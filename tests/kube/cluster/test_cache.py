"""The cache in the cluster: a second MetaFlow of the same spec makes no pod for a cached step
or a cached micro section; its status counts them as cached and names the flow they came
from, and `meta status` says so. The entries are in the store's `.cache` folder.

Pods land on the kwok node (each succeeds after 1 s, writing nothing), so entries hold no
outputs; what a hit restores is shown with real processes in tests/local and tests/kube/unit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.cluster.conftest import Cluster
from tests.kube.cluster.operating import META, Operator, apply, pod_log, wait_phase


@pytest.fixture
def operator(cluster: Cluster, namespace: str, crd: None, tmp_path: Path) -> Iterator[Operator]:
    running = Operator(cluster, namespace, tmp_path / "operator.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()
        sys.stderr.write(running.log.read_text(errors="replace")[-4000:])


def step(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "run": {"image": "busybox", "command": ["sh", "-c", "true"]}, **extra}


def flow(name: str) -> dict[str, Any]:
    micro = {
        "name": "pod",
        "scope": "micro",
        "pattern": "sequence",
        "cache": {"version": "1"},
        "units": [step("one"), step("two")],
    }
    units = [step("a", cache=True), step("b", dependsOn=["a"]), micro]
    return {
        "metadata": {"name": name},
        "spec": {"root": {"name": "root", "scope": "macro", "pattern": "dag", "units": units}},
    }


def test_a_second_flow_of_the_same_spec_makes_no_pod_for_what_the_cache_holds(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    with pod_log(cluster, namespace) as pods:
        apply(cluster, namespace, flow("first"))
        first = wait_phase(cluster, namespace, "first", ("Succeeded", "Failed"))
        assert first["status"]["phase"] == "Succeeded", first["status"]
        made_first = set(pods.created.values())
        assert len(made_first) == 3, made_first
        apply(cluster, namespace, flow("second"))
        second = wait_phase(cluster, namespace, "second", ("Succeeded", "Failed"))
    status = second["status"]
    assert status["phase"] == "Succeeded", status
    made_second = set(pods.created.values()) - made_first
    assert len(made_second) == 1 and all("second" in name for name in made_second), made_second
    assert (status["cacheHits"], status["cached"], status["succeeded"]) == (2, 2, 1)
    assert sorted(status["cachedUnits"], key=lambda hit: hit["id"]) == [
        {"id": "second/root/a", "from": f"{namespace}/first"},
        {"id": "second/root/pod", "from": f"{namespace}/first"},
    ]
    shown = subprocess.run(
        [str(META), "status", "second", "-n", namespace],
        env=cluster.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"cached second/root/a (from {namespace}/first)" in shown.stdout
    view = json.loads(
        subprocess.run(
            [str(META), "status", "second", "-n", namespace, "-o", "json"],
            env=cluster.env(), capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert view["units"]["cached"] == 2
    entries = list((operator.log.parent / "store" / ".cache" / "entries").rglob("entry.json"))
    assert len(entries) == 2, "a step and a micro section: one entry each"
    units = {json.loads(entry.read_text())["unit"] for entry in entries}
    assert units == {"first/root/a", "first/root/pod"}
