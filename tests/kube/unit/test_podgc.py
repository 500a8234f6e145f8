"""Pod garbage collection (`spec.podGC`): which pods go, and never before their unit's record
is in the journal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from meta.kube.broker import Watches
from meta.kube.controller.reconcile import run_flow
from meta.kube.types import ANNOTATION_UNIT_ID
from tests.kube.unit.fakes import FakeApi, FakeKubelet
from tests.kube.unit.test_runner import NS, dfs_spec, resource, run, settings, step


class JournalCheckingApi(FakeApi):
    """Notes, for each pod deleted, whether its unit's record was in a journal ConfigMap then,
    and the flow's phase then."""

    def __init__(self) -> None:
        super().__init__()
        self.journaled_when_deleted: dict[str, bool] = {}
        self.phase_when_deleted: dict[str, str] = {}

    def journaled(self) -> set[str]:
        return {
            json.loads(line)["id"]
            for (_, name), found in self.config_maps.items()
            if "-journal-" in name
            for text in (found.get("data") or {}).values()
            for line in text.splitlines()
        }

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int = 5) -> None:
        pod = self.pods.get((namespace, name))
        if pod is not None:
            unit = pod["metadata"]["annotations"][ANNOTATION_UNIT_ID]
            self.journaled_when_deleted[name] = unit in self.journaled()
            self.phase_when_deleted[name] = self.status.get("phase", "") if self.statuses else ""
        await super().delete_pod(namespace, name, grace_seconds)


def with_gc(spec: dict[str, Any], strategy: str) -> dict[str, Any]:
    return {**spec, "podGC": {"strategy": strategy}}


def failing_spec() -> dict[str, Any]:
    return {
        "defaults": {"retries": 1, "retryBackoffSeconds": 0.01},
        "root": {
            "name": "seq",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("first"), step("boom")],
        },
    }


def test_on_pod_completion_deletes_each_pod_only_once_its_record_is_journaled(
    tmp_path: Path,
) -> None:
    api, broker = JournalCheckingApi(), Watches()
    FakeKubelet(api, broker, delay=0.005)
    body = resource(with_gc(dfs_spec(max_active=2), "OnPodCompletion"))
    assert run(api, broker, body, tmp_path) == "Succeeded"
    assert api.pods == {}, "every pod is collected"
    assert len(api.journaled_when_deleted) == 6
    assert all(api.journaled_when_deleted.values()), "no pod went before its record"
    assert any(phase == "Running" for phase in api.phase_when_deleted.values()), (
        "pods go while the flow runs, not only at its end"
    )


def test_without_pod_gc_every_pod_stays(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)
    assert run(api, broker, resource(dfs_spec()), tmp_path) == "Succeeded"
    assert len(api.pods) == 6 and api.deleted == []


def test_on_pod_success_keeps_the_pods_that_failed(tmp_path: Path) -> None:
    api, broker = JournalCheckingApi(), Watches()
    FakeKubelet(api, broker, exit_codes={"tree/seq/boom": 3})
    body = resource(with_gc(failing_spec(), "OnPodSuccess"))
    assert run(api, broker, body, tmp_path) == "Failed"
    left = sorted(p["metadata"]["annotations"][ANNOTATION_UNIT_ID] for p in api.pods.values())
    assert left == ["tree/seq/boom", "tree/seq/boom"], "both attempts of the failed unit stay"
    assert all(api.journaled_when_deleted.values())


def test_on_flow_success_deletes_every_pod_once_the_flow_succeeded_and_none_if_it_failed(
    tmp_path: Path,
) -> None:
    api, broker = JournalCheckingApi(), Watches()
    FakeKubelet(api, broker)
    body = resource(with_gc(dfs_spec(), "OnFlowSuccess"))
    assert run(api, broker, body, tmp_path) == "Succeeded"
    assert api.pods == {}
    # The sweep deletes them in one call, after the status says Succeeded.
    assert api.calls.by_verb["deletecollection"] == 1 and api.statuses[-1]["phase"] == "Succeeded"

    api, broker = JournalCheckingApi(), Watches()
    FakeKubelet(api, broker, exit_codes={"tree/seq/boom": 3})
    body = resource(with_gc(failing_spec(), "OnWorkflowSuccess"))  # Argo's name
    assert run(api, broker, body, tmp_path / "failed") == "Failed"
    assert len(api.pods) == 3 and api.deleted == []


def test_on_flow_completion_deletes_every_pod_once_the_flow_failed(tmp_path: Path) -> None:
    api, broker = JournalCheckingApi(), Watches()
    FakeKubelet(api, broker, exit_codes={"tree/seq/boom": 3})
    body = resource(with_gc(failing_spec(), "OnFlowCompletion"))
    assert run(api, broker, body, tmp_path) == "Failed"
    assert api.pods == {} and api.journaled_when_deleted == {}, "swept in one call at the end"


def test_a_restarted_operator_does_not_rerun_a_unit_whose_pod_was_collected(
    tmp_path: Path,
) -> None:
    api = JournalCheckingApi()
    body = resource(with_gc(dfs_spec(max_active=2, order="pre"), "OnPodCompletion"))

    async def first_session() -> None:
        broker = Watches()
        kubelet = FakeKubelet(api, broker, hold=lambda unit: unit.endswith("node-a"))
        stopped = asyncio.Event()

        async def stop_once_some_pod_is_collected() -> None:
            while not (api.deleted and any(u.endswith("node-a") for u in kubelet.order)):
                await asyncio.sleep(0.01)
            stopped.set()

        stopper = asyncio.ensure_future(stop_once_some_pod_is_collected())
        assert await run_flow(api, broker, body, settings(tmp_path), stopped.wait()) == "Running"
        await stopper

    asyncio.run(first_session())
    collected = list(api.deleted)
    assert collected and all(api.journaled_when_deleted.values())
    held = [p for p in api.pods.values() if p["status"]["phase"] == "Pending"]
    assert held, "node-a's pod was left running for the next session"

    async def second_session() -> str:
        broker = Watches()
        kubelet = FakeKubelet(api, broker)
        for pod in held:
            asyncio.get_running_loop().call_later(0.02, kubelet.end, pod, 0)
        return await run_flow(api, broker, body | {"status": api.status}, settings(tmp_path))

    assert asyncio.run(second_session()) == "Succeeded"
    assert len(api.created) == len(set(api.created)) == 6, "no collected unit ran again"
    assert api.status["cached"] >= len(collected), "counted as finished before"
    assert api.pods == {}


def test_pods_a_stopped_operator_left_are_swept_when_it_finds_the_flow_ended(
    tmp_path: Path,
) -> None:
    api, broker = FakeApi(), Watches()
    pod = {"metadata": {"name": "tree-x-1", "labels": {"meta-orchestrator.io/flow": "tree"}}}
    api.pods[(NS, "tree-x-1")] = pod | {"status": {"phase": "Succeeded"}}
    body = resource(with_gc(dfs_spec(), "OnPodCompletion"), status={"phase": "Succeeded"})
    assert run(api, broker, body, tmp_path) == "Succeeded"
    assert api.pods == {} and api.created == []


def test_a_referenced_flow_runs_under_the_root_flows_pod_gc_and_parallelism(
    tmp_path: Path,
) -> None:
    (tmp_path / "child.flow.yaml").write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {name: child}\n"
        "spec:\n  podGC: {strategy: OnFlowSuccess}\n  parallelism: 7\n"
        "  root: {name: s, run: {command: ['true']}}\n"
    )
    api, broker = FakeApi(), Watches()
    root = {"parallelism": 2, "root": {"name": "ref", "flowRef": {"path": "child.flow.yaml"}}}
    body = resource(with_gc(root, "OnPodSuccess"))

    async def until_the_child_is_made() -> str:
        stopped = asyncio.Event()

        async def stop() -> None:
            while not api.flows:
                await asyncio.sleep(0.01)
            stopped.set()

        stopper = asyncio.ensure_future(stop())
        phase = await run_flow(api, broker, body, settings(tmp_path), stopped.wait())
        await stopper
        return phase

    assert asyncio.run(until_the_child_is_made()) == "Running"
    (child,) = api.flows.values()
    assert child["spec"]["podGC"] == {"strategy": "OnPodSuccess"}
    assert child["spec"]["parallelism"] == 2
