"""`meta ui` over a cluster's MetaFlows (`meta.ui.cluster`), against the in-memory API the
operator's unit tests use: a flow run there by the operator's own runner is listed and counted,
and a unit whose pod runs shows as running, with its pod and containers, and ends with its pod
before its record is flushed to the journal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from meta.kube.broker import Watches
from meta.kube.controller.journal import chunk_name
from meta.kube.types import ANNOTATION_UNIT_ID, LABEL_ATTEMPT, LABEL_FLOW, FlowOwner
from meta.ui.cluster import ClusterRuns
from tests.kube.unit.fakes import FakeApi, FakeKubelet
from tests.kube.unit.test_runner import NS, dfs_spec, resource, run


def test_a_flow_the_operator_ran_is_listed_and_its_units_counted(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker, delay=0.005)
    body = resource(dfs_spec(max_active=2))
    assert run(api, broker, body, tmp_path) == "Succeeded"
    api.flows[(NS, "tree")] = {**body, "status": api.status}
    runs = ClusterRuns(api, NS)

    async def read() -> tuple[Any, Any, Any]:
        listing = await runs.listing()
        model = await runs.model("tree")
        assert model is not None and await runs.model("nothing") is None
        await model.load()
        return listing, model.summary(), model.rows("tree/walk", 0, 100)

    (views, faults), summary, rows = asyncio.run(read())
    assert faults == []
    assert [(v["run"], v["state"], v["units"]["succeeded"]) for v in views] == [
        ("tree", "succeeded", 6)
    ]
    assert summary["state"] == "succeeded" and summary["units"]["succeeded"] == 6
    assert summary["groups"]["tree/walk"]["peak"] <= 2
    assert sorted(row["name"] for row in rows) == [
        "node-a", "node-a1", "node-a2", "node-b", "node-b1", "node-root"
    ]  # fmt: skip


def _pod(uid: str, phase: str, attempt: int = 1) -> dict[str, Any]:
    name = uid.replace("/", "-") + f"-{attempt}"
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {LABEL_FLOW: "tree", LABEL_ATTEMPT: str(attempt)},
            "annotations": {ANNOTATION_UNIT_ID: uid},
            "creationTimestamp": "2026-12-06T10:00:00Z",
        },
        "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "step", "image": "busybox"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "step", "image": "busybox", "state": {"running": {}}}],
        },
    }


def test_a_running_pod_is_a_running_unit_until_the_journal_has_its_record() -> None:
    api = FakeApi()
    owner = FlowOwner(NS, "tree", "uid-tree")
    chunk = chunk_name(owner, 0)
    status = {"phase": "Running", "startedAt": "2026-12-06T10:00:00Z", "journal": [chunk]}
    api.flows[(NS, "tree")] = resource(dfs_spec(), status=status)
    uid = "tree/walk/0/node-root"
    api.pods[(NS, "p")] = _pod(uid, "Running")
    record = {
        "id": uid,
        "name": "node-root",
        "section": "tree/walk",
        "scope": "macro",
        "state": "succeeded",
        "attempts": 1,
        "started_at": 1.0,
        "finished_at": 2.0,
    }
    runs = ClusterRuns(api, NS)

    async def follow() -> list[Any]:
        model = await runs.model("tree")
        assert model is not None
        seen = [await model.load(), model.summary()["units"]["running"]]
        seen.append((await model.detail_of(uid))["pod"])
        api.pods[(NS, "p")]["status"]["phase"] = "Succeeded"
        seen += [await model.refresh(), model.summary()["units"]]
        api.config_maps[(NS, chunk)] = {"data": {"000000": json.dumps(record) + "\n"}}
        seen += [await model.refresh(), model.summary()["units"]]
        seen.append(await model.refresh())
        return seen

    started, running, pod, ended, by_pod, recorded, counts, quiet = asyncio.run(follow())
    assert started == {uid} and running == 1
    assert pod["phase"] == "Running" and pod["node"] == "kwok-node-0"
    assert pod["containers"] == [
        {"name": "step", "image": "busybox", "state": "running", "restarts": 0}
    ]
    # Its pod ended before the operator flushed its record: the pod ends it.
    assert ended == {uid} and by_pod["running"] == 0 and by_pod["succeeded"] == 1
    assert recorded == {uid}  # the record adds what the pod does not say
    assert counts["running"] == 0 and counts["succeeded"] == 1
    assert quiet == set()  # a key read once is not applied again
