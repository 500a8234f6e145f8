"""The operator's flow runner against an in-memory API: validation, lazy pods within bounds,
failures, a restart that adopts pods instead of recreating them, and a status that stays small."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meta.kube.broker import Watches
from meta.kube.controller.journal import chunk_name
from meta.kube.controller.reconcile import run_flow
from meta.kube.types import ANNOTATION_UNIT_ID, FlowOwner, OperatorSettings, PodSettings
from tests.kube.unit.fakes import FakeApi, FakeKubelet

NS = "team"
TREE = {
    "name": "root",
    "kids": [
        {"name": "a", "kids": [{"name": "a1", "kids": []}, {"name": "a2", "kids": []}]},
        {"name": "b", "kids": [{"name": "b1", "kids": []}]},
    ],
}


def resource(
    spec: dict[str, Any], name: str = "tree", status: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def step(name: str, *command: str) -> dict[str, Any]:
    return {"name": name, "run": {"command": list(command or ("true",)), "image": "busybox"}}


def dfs_spec(max_active: int = 2, order: str = "post") -> dict[str, Any]:
    return {
        "inputs": {"tree": {"value": TREE}},
        "root": {
            "name": "walk",
            "scope": "macro",
            "pattern": "dfs",
            "order": order,
            "maxActive": max_active,
            "over": {"input": "tree", "children": "kids"},
            "visit": step("node-{{ node.name }}", "echo", "{{ node.name }}"),
        },
    }


def settings(tmp_path: Path) -> OperatorSettings:
    return OperatorSettings(
        pods=PodSettings(), store_dir=str(tmp_path / "store"), data_dir=tmp_path
    )


def run(api: FakeApi, broker: Watches, body: dict[str, Any], tmp_path: Path, **kw: Any) -> str:
    async def go() -> str:
        return await run_flow(api, broker, body, settings(tmp_path), **kw)

    return asyncio.run(go())


def test_a_valid_flow_runs_one_pod_per_unit_within_max_active(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    kubelet = FakeKubelet(api, broker, delay=0.005)
    assert run(api, broker, resource(dfs_spec(max_active=2)), tmp_path) == "Succeeded"
    assert len(kubelet.order) == 6 and len(set(kubelet.order)) == 6
    assert kubelet.peak <= 2
    status = api.status
    assert status["phase"] == "Succeeded"
    assert status["progress"] == "6/6" and status["active"] == 0
    assert (
        status["conditions"][0]["type"] == "Valid" and status["conditions"][0]["status"] == "True"
    )
    assert status["sections"][0]["peakActive"] <= 2
    assert status["outputs"].endswith("/outputs")
    assert [e["reason"] for e in api.events] == ["Started", "Succeeded"]
    journal = api.config_maps[(NS, chunk_name(FlowOwner(NS, "tree", "uid-tree"), 0))]
    lines = "".join(journal["data"].values()).splitlines()
    assert {json.loads(line)["id"] for line in lines} == set(kubelet.order)


def test_post_order_pods_see_their_childrens_outputs_mounted(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)
    run(api, broker, resource(dfs_spec(max_active=1)), tmp_path)
    pods = {p["metadata"]["annotations"][ANNOTATION_UNIT_ID]: p for p in api.pods.values()}
    root = next(p for unit, p in pods.items() if unit.endswith("node-root"))
    mounts = {m["mountPath"]: m for m in root["spec"]["containers"][0]["volumeMounts"]}
    assert {"/meta/upstream/node-a", "/meta/upstream/node-b"} <= mounts.keys()
    assert mounts["/meta/upstream/node-a"]["readOnly"] is True
    child = next(unit for unit in pods if unit.endswith("node-a"))
    assert mounts["/meta/upstream/node-a"]["subPath"] == f"uid-tree/{child}/outputs"


def test_the_operator_makes_at_most_spec_parallelism_pods_at_once(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    kubelet = FakeKubelet(api, broker, delay=0.005)
    spec = dfs_spec(max_active=5) | {"parallelism": 1}
    assert run(api, broker, resource(spec), tmp_path) == "Succeeded"
    assert len(kubelet.order) == 6
    assert kubelet.peak == 1, "a section of maxActive 5 under a run of parallelism 1"


def test_an_invalid_spec_is_marked_and_no_pod_is_made(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    spec = dfs_spec()
    spec["root"]["maxActive"] = 0
    spec["root"]["visitt"] = {}
    assert run(api, broker, resource(spec), tmp_path) == "Invalid"
    assert api.created == []
    valid = api.status["conditions"][0]
    assert (valid["type"], valid["status"]) == ("Valid", "False")
    assert "/spec/root/maxActive" in valid["message"]
    assert "visitt" in valid["message"]
    assert api.events[-1]["type"] == "Warning" and api.events[-1]["reason"] == "Invalid"


def test_a_micro_section_is_one_pod_with_a_quarterback_allowed_to_touch_that_pod_alone(
    tmp_path: Path,
) -> None:
    api, broker = FakeApi(), Watches()
    report = '{"unitsRun": 6, "peakActive": 3, "imageSwaps": 0}'
    FakeKubelet(api, broker, messages={"tree/outer/pod": report})
    spec = {
        "root": {
            "name": "outer",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                step("before"),
                {
                    "name": "pod",
                    "scope": "micro",
                    "pattern": "fanout",
                    "maxActive": 3,
                    "over": {"input": "items"},
                    "visit": {
                        "name": "item-{{ item }}",
                        "run": {"command": ["true"], "image": "py"},
                    },
                },
                step("after"),
            ],
        },
        "inputs": {"items": {"value": [1, 2, 3, 4, 5]}},
    }
    assert run(api, broker, resource(spec), tmp_path) == "Succeeded"
    assert len(api.created) == 3, "before, the micro pod, after"
    micro = next(p for p in api.pods.values() if "quarterback" in str(p["spec"]["containers"]))
    name = micro["metadata"]["name"]
    containers = [c["name"] for c in micro["spec"]["containers"]]
    assert containers == ["quarterback", "slot-0", "slot-1", "slot-2"], "one slot per live unit"
    assert {c["image"] for c in micro["spec"]["containers"][1:]} == {"py"}
    assert micro["spec"]["serviceAccountName"] == f"{name}-qb"
    role = api.objects[("Role", NS, f"{name}-qb")]
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "resourceNames": [name],
            "verbs": ["patch"],
        }
    ]
    binding = api.objects[("RoleBinding", NS, f"{name}-qb")]
    assert binding["subjects"][0]["name"] == f"{name}-qb"
    assert micro["spec"]["automountServiceAccountToken"] is False
    with_token = [
        c["name"]
        for c in micro["spec"]["containers"]
        if any(m["name"] == "token" for m in c["volumeMounts"])
    ]
    assert with_token == ["quarterback"], "steps in the slots never see the token"
    scratch = next(v for v in micro["spec"]["volumes"] if v["name"] == "scratch")
    assert scratch["emptyDir"] == {"medium": "Memory"}
    work = json.loads(api.config_maps[(NS, f"{name}-work")]["data"]["task.json"])
    assert (
        work["task"]["id"] == "tree/outer/pod" and work["task"]["pointer"] == "/spec/root/units/1"
    )
    after = next(
        p
        for p in api.pods.values()
        if p["metadata"]["labels"]["meta-orchestrator.io/unit-name"] == "after"
    )
    mounts = {m["mountPath"]: m for m in after["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/meta/upstream/pod"]["subPath"] == "uid-tree/tree/outer/pod/outputs"
    sections = {s["id"]: s for s in api.status["sections"]}
    assert sections["tree/outer/pod"] == {
        "id": "tree/outer/pod",
        "pattern": "fanout",
        "scope": "micro",
        "maxActive": 3,
        "peakActive": 3,
        "unitsRun": 6,
        "state": "succeeded",
    }, "the quarterback's report is merged into the flow's status"


def test_a_failing_unit_fails_the_flow_with_its_reason_after_its_retries(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    spec = {
        "defaults": {"retries": 1, "retryBackoffSeconds": 0.01},
        "root": {
            "name": "seq",
            "scope": "macro",
            "pattern": "sequence",
            "units": [step("first"), step("boom"), step("never")],
        },
    }
    kubelet = FakeKubelet(api, broker, exit_codes={"tree/seq/boom": 3})
    assert run(api, broker, resource(spec), tmp_path) == "Failed"
    assert kubelet.order == ["tree/seq/first", "tree/seq/boom", "tree/seq/boom"]
    assert api.created[1].endswith("-1") and api.created[2].endswith("-2"), "a retry is a new pod"
    status = api.status
    assert status["phase"] == "Failed" and status["failedUnit"] == "tree/seq/boom"
    assert "exited with code 3" in status["reason"] and "the last words" in status["reason"]
    assert api.events[-1]["reason"] == "UnitFailed"


def test_a_restarted_operator_adopts_pods_and_never_recreates_a_finished_one(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    body = resource(dfs_spec(max_active=2, order="pre"))

    async def first_session() -> None:
        broker = Watches()
        started = asyncio.Event()
        kubelet = FakeKubelet(api, broker, hold=lambda unit: unit.endswith("node-a"))
        stopped = asyncio.Event()

        async def stop_when_held() -> None:
            while not any(u.endswith("node-a") for u in kubelet.order):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            started.set()
            stopped.set()

        stopper = asyncio.ensure_future(stop_when_held())
        phase = await run_flow(api, broker, body, settings(tmp_path), stopped.wait())
        await stopper
        assert phase == "Running"

    asyncio.run(first_session())
    assert api.deleted == [], "an operator going away leaves its pods running"
    first_created = list(api.created)
    held = [p for p in api.pods.values() if p["status"]["phase"] == "Pending"]
    assert held, "some unit was mid-way when the operator stopped"

    async def second_session() -> str:
        broker = Watches()
        kubelet = FakeKubelet(api, broker)
        for pod in held:  # the pod that was running ends while the new session starts
            asyncio.get_running_loop().call_later(0.02, kubelet.end, pod, 0)
        return await run_flow(api, broker, body | {"status": api.status}, settings(tmp_path))

    assert asyncio.run(second_session()) == "Succeeded"
    assert len(api.created) == len(set(api.created)) == 6, "no pod was made twice"
    assert set(first_created) <= set(api.created)
    assert api.status["progress"] == "6/6"
    status = api.status
    assert status["cached"] > 0, "what the first session finished is counted as cached"
    assert status["succeeded"] + status["cached"] == 6 and status["cancelled"] == 0


def test_an_ended_flow_is_left_alone(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    assert (
        run(api, broker, resource(dfs_spec(), status={"phase": "Succeeded"}), tmp_path)
        == "Succeeded"
    )
    assert api.created == [] and api.statuses == []


@pytest.mark.slow
def test_status_stays_small_and_writes_stay_few_for_ten_thousand_units(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker, delay=0)
    spec = {
        "inputs": {"items": {"value": list(range(10_000))}},
        "root": {
            "name": "wide",
            "scope": "macro",
            "pattern": "fanout",
            "maxActive": 50,
            "over": {"input": "items"},
            "visit": step("item"),
        },
    }
    assert run(api, broker, resource(spec, name="wide"), tmp_path) == "Succeeded"
    assert len(json.dumps(api.status)) <= 64 * 1024
    writes = api.calls.writes - len(api.events)
    assert writes / 10_000 <= 3


def test_pods_ask_for_the_most_of_what_runs_at_once_not_the_sum(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)

    def asking(name: str, cpu: str, memory: str) -> dict[str, Any]:
        unit = step(name)
        unit["run"]["resources"] = {"requests": {"cpu": cpu, "memory": memory}}
        return unit

    spec = {
        "root": {
            "name": "outer",
            "scope": "macro",
            "pattern": "sequence",
            "units": [
                asking("alone", "250m", "64Mi"),
                {
                    "name": "pod",
                    "scope": "micro",
                    "pattern": "sequence",
                    "units": [
                        asking("small", "500m", "1Gi"),
                        asking("big", "2", "256Mi"),
                        asking("tiny", "100m", "512Mi"),
                    ],
                },
            ],
        }
    }
    assert run(api, broker, resource(spec), tmp_path) == "Succeeded"
    pods = {p["metadata"]["labels"]["meta-orchestrator.io/unit-name"]: p for p in api.pods.values()}
    alone = pods["alone"]["spec"]["containers"][0]
    assert alone["resources"] == {"requests": {"cpu": "250m", "memory": "64Mi"}}
    slots = [c for c in pods["pod"]["spec"]["containers"] if c["name"].startswith("slot-")]
    assert len(slots) == 1, "a sequence runs one step at a time: one slot"
    assert slots[0]["resources"] == {"requests": {"cpu": "2", "memory": "1Gi"}}


def test_pods_are_left_to_the_scheduler_within_the_placement_the_operator_gives(
    tmp_path: Path,
) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker, messages={"tree/pod": '{"unitsRun": 1, "peakActive": 1}'})
    spec = {"root": {"name": "pod", "scope": "micro", "pattern": "sequence", "units": [step("a")]}}
    toleration = {"key": "dedicated", "operator": "Equal", "value": "meta", "effect": "NoSchedule"}
    chosen = OperatorSettings(
        pods=PodSettings(node_selector={"pool": "batch"}, tolerations=[toleration]),
        store_dir=str(tmp_path / "store"),
        data_dir=tmp_path,
    )

    async def go() -> str:
        return await run_flow(api, broker, resource(spec), chosen)

    assert asyncio.run(go()) == "Succeeded"
    (pod,) = api.pods.values()
    assert "nodeName" not in pod["spec"]
    assert pod["spec"]["nodeSelector"] == {"pool": "batch"}
    assert pod["spec"]["tolerations"] == [toleration]
    env = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert "KUBERNETES_SERVICE_HOST" not in env, "the quarterback uses the kubernetes service"


def test_files_no_pod_can_read_are_told_of_and_the_operator_still_reads_them(
    tmp_path: Path,
) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)
    spec = {
        "inputs": {"items": {"path": "data/items.json"}},
        "files": {"data/items.json": "[1, 2, 3]"},
        "root": {
            "name": "each",
            "scope": "macro",
            "pattern": "fanout",
            "over": {"input": "items"},
            "visit": step("item-{{ item }}"),
        },
    }
    assert run(api, broker, resource(spec), tmp_path) == "Succeeded"
    assert len(api.created) == 3, "the operator walked the file it wrote"
    (told,) = [e for e in api.events if e["reason"] == "NoStore"]
    assert "--store-claim" in told["message"]
    stored = tmp_path / "store" / "uid-tree" / ".files" / "data" / "items.json"
    assert stored.read_text() == "[1, 2, 3]"
    mounts = {
        m["mountPath"]
        for m in next(iter(api.pods.values()))["spec"]["containers"][0]["volumeMounts"]
    }
    assert str(stored.parent.parent) in mounts, "pods mount the files where the operator reads them"


def test_a_second_flow_reuses_a_cached_steps_outputs_from_the_stores_cache(
    tmp_path: Path,
) -> None:
    """The operator keeps a cached step's outputs in the store's `.cache` and links them into
    the next flow's store folder instead of making its pod; a micro pod whose section caches a
    step mounts the cache for its quarterback (and only such a pod)."""
    api, broker = FakeApi(), Watches()
    kubelet = FakeKubelet(api, broker)
    store = tmp_path / "store"
    created = api.on_create
    assert created is not None

    def writes_outputs(pod: dict[str, Any]) -> None:
        unit = pod["metadata"]["annotations"][ANNOTATION_UNIT_ID]
        flow = pod["metadata"]["labels"]["meta-orchestrator.io/flow"]
        outputs = store / f"uid-{flow}" / unit / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        (outputs / "made-by").write_text(unit)
        if unit == "second/outer/pod":
            # What the second pod's quarterback keeps when its cache stands for `inner`.
            kept = store / f"uid-{flow}" / unit / "result" / "1"
            kept.mkdir(parents=True)
            hit = {"id": f"{unit}/inner", "name": "inner", "section": unit, "from": f"{NS}/first"}
            (kept / "cached.json").write_text(json.dumps([hit]))
        created(pod)

    api.on_create = writes_outputs
    micro = {
        "name": "pod",
        "scope": "micro",
        "pattern": "sequence",
        "units": [{**step("inner"), "cache": True}],
    }
    spec = {
        "root": {
            "name": "outer",
            "scope": "macro",
            "pattern": "sequence",
            "units": [{**step("fetch", "fetch", "data"), "cache": True}, micro],
        }
    }
    assert run(api, broker, resource(spec, name="first"), tmp_path) == "Succeeded"
    assert kubelet.order == ["first/outer/fetch", "first/outer/pod"]
    pods = {p["metadata"]["annotations"][ANNOTATION_UNIT_ID]: p for p in api.pods.values()}
    quarterback = pods["first/outer/pod"]["spec"]["containers"][0]
    cache_mounts = [m for m in quarterback["volumeMounts"] if m["mountPath"] == "/meta/cache"]
    assert cache_mounts == [{"name": "store", "mountPath": "/meta/cache", "subPath": ".cache"}]
    fetch = pods["first/outer/fetch"]["spec"]["containers"][0]
    assert all(m["mountPath"] != "/meta/cache" for m in fetch["volumeMounts"])

    assert run(api, broker, resource(spec, name="second"), tmp_path) == "Succeeded"
    assert kubelet.order[2:] == ["second/outer/pod"], "no pod for the cached step"
    status = api.status
    assert (status["cacheHits"], status["cached"]) == (2, 2)
    assert status["cachedUnits"] == [
        {"id": "second/outer/fetch", "from": f"{NS}/first"},
        {"id": "second/outer/pod/inner", "from": f"{NS}/first"},
    ]
    journal = api.config_maps[(NS, chunk_name(FlowOwner(NS, "second", "uid-second"), 0))]
    lines = [json.loads(line) for line in "".join(journal["data"].values()).splitlines()]
    inner = [line for line in lines if line["id"] == "second/outer/pod/inner"]
    assert [(line["state"], line["cached_from"]) for line in inner] == [("cached", f"{NS}/first")]
    restored = store / "uid-second" / "second/outer/fetch" / "outputs" / "made-by"
    assert restored.read_text() == "first/outer/fetch", "the first flow's outputs, linked in"
    assert (api.events[-1]["reason"], api.events[-1]["message"]) == (
        "Succeeded",
        "1 units succeeded, 2 cached",
    )


def test_a_micro_pod_a_failure_stops_is_given_the_time_of_its_finally_units_and_awaited(
    tmp_path: Path,
) -> None:
    """Deleted, a micro pod's quarterback runs the section's finally units (SIGTERM): the pod
    gets their time limits as its grace, and the flow ends once the pod has."""
    api, broker = FakeApi(), Watches()
    kubelet = FakeKubelet(
        api, broker, exit_codes={"tree/root/boom": 3}, hold=lambda unit: unit == "tree/root/pod"
    )
    phases_at_pod_end: list[str] = []
    micro: list[str] = []

    def deleted(pod: dict[str, Any]) -> None:
        def end() -> None:
            phases_at_pod_end.append(api.status.get("phase", ""))
            kubelet.end(pod, 1)

        if pod["metadata"]["annotations"][ANNOTATION_UNIT_ID] == "tree/root/pod":
            micro.append(pod["metadata"]["name"])
            asyncio.get_running_loop().call_later(0.05, end)

    api.on_delete = deleted
    clean = {**step("clean"), "timeoutSeconds": 40}
    spec = {
        "defaults": {"timeoutSeconds": 100},
        "root": {
            "name": "root",
            "scope": "macro",
            "pattern": "dag",
            "units": [
                {
                    "name": "pod",
                    "scope": "micro",
                    "pattern": "sequence",
                    "units": [step("long")],
                    "finally": [clean, step("notify")],
                },
                step("boom", "false"),
            ],
        },
    }
    assert run(api, broker, resource(spec), tmp_path) == "Failed"
    assert api.graces[micro[0]] == 40 + 100 + PodSettings().grace_seconds
    assert phases_at_pod_end == ["Running"], "the flow ended only once the pod had"
    assert api.status["failedUnit"] == "tree/root/boom"


def test_a_micro_pod_without_finally_units_is_deleted_with_the_usual_grace(
    tmp_path: Path,
) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(
        api, broker, exit_codes={"tree/root/boom": 3}, hold=lambda unit: unit == "tree/root/pod"
    )
    pod = {"name": "pod", "scope": "micro", "pattern": "sequence", "units": [step("long")]}
    spec = {
        "root": {
            "name": "root",
            "scope": "macro",
            "pattern": "dag",
            "units": [pod, step("boom", "false")],
        }
    }
    assert run(api, broker, resource(spec), tmp_path) == "Failed"
    (deleted,) = api.deleted
    assert api.graces[deleted] == PodSettings().grace_seconds


def test_an_ended_flows_journal_leaves_its_config_maps_for_the_store(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)
    compacting = replace(settings(tmp_path), compact_journal=True)

    async def go() -> str:
        return await run_flow(api, broker, resource(dfs_spec()), compacting)

    assert asyncio.run(go()) == "Succeeded"
    compacted = api.status["journalCompacted"]
    assert api.status["journal"] == [] and api.config_maps == {}
    kept = (tmp_path / "store" / compacted["path"]).read_text().splitlines()
    assert len(kept) == compacted["units"] == 6
    assert api.status["journalKept"] is None


def test_without_a_store_the_journal_stays_and_the_status_says_why(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)
    assert run(api, broker, resource(dfs_spec()), tmp_path) == "Succeeded"
    assert "journalCompacted" not in api.status
    assert "no store" in api.status["journalKept"]
    assert [("team", name) for name in api.status["journal"]] == list(api.config_maps)


def test_a_flow_that_ended_before_its_journal_was_compacted_is_compacted_next_time(
    tmp_path: Path,
) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)
    assert run(api, broker, resource(dfs_spec()), tmp_path) == "Succeeded"
    ended = resource(dfs_spec(), status=api.status)
    pods = len(api.created)

    async def again() -> str:
        return await run_flow(api, broker, ended, replace(settings(tmp_path), compact_journal=True))

    assert asyncio.run(again()) == "Succeeded"
    assert len(api.created) == pods and api.config_maps == {}
    assert api.status["journalCompacted"]["units"] == 6


def test_a_journal_the_store_cannot_take_stays_and_the_status_says_why(tmp_path: Path) -> None:
    api, broker = FakeApi(), Watches()
    FakeKubelet(api, broker)
    (tmp_path / "store" / "uid-tree").mkdir(parents=True)
    (tmp_path / "store" / "uid-tree" / ".journal").write_text("a file where a folder should be")
    compacting = replace(settings(tmp_path), compact_journal=True)

    async def go() -> str:
        return await run_flow(api, broker, resource(dfs_spec()), compacting)

    assert asyncio.run(go()) == "Succeeded"
    assert "cannot write it into the store" in api.status["journalKept"]
    assert [("team", name) for name in api.status["journal"]] == list(api.config_maps)


def test_a_timed_out_step_keeps_its_last_words_read_from_its_log_before_its_pod_goes(
    tmp_path: Path,
) -> None:
    """As locally: why an attempt timed out survives, with what it said last (the pod's log
    goes with the pod, so it is read before). A step holding a secret has its log read by
    nobody: it may print the secret."""
    api = FakeApi()
    broker = Watches()
    FakeKubelet(api, broker, hold=lambda unit: True)
    secret = {"TOKEN": {"secretRef": {"name": "creds", "key": "token"}}}
    slow = {**step("slow"), "timeoutSeconds": 1}
    hush = {**step("hush"), "timeoutSeconds": 1}
    hush["run"]["env"] = secret
    body = resource(
        {
            "root": {
                "name": "all",
                "scope": "macro",
                "pattern": "dag",
                "onFailure": "continue",
                "units": [slow, hush],
            }
        }
    )

    def said(pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        api.logs[(NS, name, "step", False)] = "".join(f"line {n}\n" for n in range(30))

    api.on_create = _also(api.on_create, said)
    assert run(api, broker, body, tmp_path) == "Failed"
    records = {
        record["name"]: record
        for config in api.config_maps.values()
        if "journal" in config["metadata"]["name"]
        for text in config["data"].values()
        for record in map(json.loads, text.splitlines())
    }
    assert set(records) == {"slow", "hush"}, records
    assert records["slow"]["reason"] == "timed out after 1 s"
    assert records["slow"]["stderr_tail"] == "".join(f"line {n}\n" for n in range(10, 30)).strip()
    assert records["hush"]["reason"] == "timed out after 1 s"
    assert records["hush"]["stderr_tail"] == ""


def _also(first: Any, then: Any) -> Any:
    def both(pod: dict[str, Any]) -> None:
        first(pod)
        then(pod)

    return both
