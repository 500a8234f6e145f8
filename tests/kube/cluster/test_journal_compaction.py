"""An ended flow's journal leaves etcd for the store, and its readers still show the flow."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from meta.cli.kube import kube_api
from meta.ui.cluster import ClusterRuns
from tests.kube.cluster.conftest import Cluster
from tests.kube.cluster.operating import Operator, apply, wait_phase

JOURNAL_OF = "meta-orchestrator.io/journal-of"


@pytest.fixture
def operator(cluster: Cluster, namespace: str, crd: None, tmp_path: Path) -> Iterator[Operator]:
    compacting = ("--compact-journal",)
    with Operator(
        cluster, namespace, tmp_path / "operator.log", options=compacting
    ).running() as running:
        yield running


def step(name: str, image: str = "busybox") -> dict[str, Any]:
    return {"name": name, "run": {"image": image, "command": ["sh", "-c", "true"]}}


def journal_maps(cluster: Cluster, namespace: str, flow: str) -> list[client.V1ConfigMap]:
    core = client.CoreV1Api(cluster.api_client)
    found: list[client.V1ConfigMap] = core.list_namespaced_config_map(
        namespace, label_selector=f"{JOURNAL_OF}={flow}"
    ).items
    return found


def test_an_ended_flows_journal_is_in_the_store_and_the_ui_still_shows_the_flow(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    flow = {
        "metadata": {"name": "kept"},
        "spec": {
            "inputs": {"items": {"value": list(range(6))}},
            "root": {
                "name": "all",
                "scope": "macro",
                "pattern": "fanout",
                "maxActive": 3,
                "over": {"input": "items"},
                "visit": step("item-{{ item }}"),
            },
        },
    }
    apply(cluster, namespace, flow)
    status = wait_phase(cluster, namespace, "kept", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status
    compacted = status["journalCompacted"]
    assert (compacted["units"], compacted["kept"]) == (6, 0)
    assert status["journal"] == []
    deadline = time.monotonic() + 30
    while journal_maps(cluster, namespace, "kept") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert journal_maps(cluster, namespace, "kept") == [], "the chunks left etcd"
    lines = (operator.log.parent / "store" / compacted["path"]).read_text().splitlines()
    assert sorted(json.loads(line)["name"] for line in lines) == [f"item-{n}" for n in range(6)]

    api = kube_api(cluster.kubeconfig)

    async def shown() -> dict[str, Any]:
        model = await ClusterRuns(api, namespace).model("kept")
        assert model is not None
        await model.load()
        return model.summary()

    try:
        summary = asyncio.run(shown())
    finally:
        api.close()
    assert summary["state"] == "succeeded"
    assert summary["units"]["succeeded"] == 6
