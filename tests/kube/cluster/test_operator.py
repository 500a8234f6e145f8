"""The operator against a real API server: the CRD it accepts, lazy pods within bounds, failures,
invalid flows, a kill and restart mid-flow that recreates no finished pod, a standby replica
taking over from a killed active one (the Lease), and deletion.

The operator runs as a real `meta operator` process. Pods are scheduled onto the kwok node (the
operator's --node-selector and --toleration), whose stages
end each pod by its image: `kwok.meta-orchestrator.io/fail` fails (exit code 3),
`kwok.meta-orchestrator.io/slow` runs for 3 s, anything else succeeds after 1 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import FailToCreateError, create_from_dict, create_from_yaml

from tests.kube.cluster.conftest import Cluster
from tests.kube.cluster.operating import (
    FLOW_LABEL,
    GROUP,
    META,
    PLURAL,
    TIMEOUT,
    VERSION,
    Operator,
    apply,
    pod_log,
    wait_phase,
)

REPO = Path(__file__).resolve().parents[3]
LEASE = "meta-orchestrator-operator"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@pytest.fixture
def operator(cluster: Cluster, namespace: str, crd: None, tmp_path: Path) -> Iterator[Operator]:
    with Operator(cluster, namespace, tmp_path / "operator.log").running() as running:
        yield running


def step(name: str, image: str = "busybox") -> dict[str, Any]:
    return {"name": name, "run": {"image": image, "command": ["sh", "-c", "true"]}}


def fanout(name: str, items: int, max_active: int, image: str = "busybox") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "inputs": {"items": {"value": list(range(items))}},
            "root": {
                "name": "each",
                "scope": "macro",
                "pattern": "fanout",
                "maxActive": max_active,
                "over": {"input": "items"},
                "visit": step("item-{{ item }}", image),
            },
        },
    }


def test_the_api_server_refuses_what_it_can_check_itself(
    cluster: Cluster, namespace: str, crd: None
) -> None:
    flow = fanout("bad-bound", 3, 1)
    flow["spec"]["root"]["maxActive"] = 0
    with pytest.raises(ApiException) as refused:
        apply(cluster, namespace, flow)
    assert refused.value.status == 422
    assert "spec.root.maxActive" in refused.value.body
    flow = fanout("bad-pattern", 3, 1)
    flow["spec"]["root"]["pattern"] = "zigzag"
    with pytest.raises(ApiException) as refused:
        apply(cluster, namespace, flow)
    assert "spec.root.pattern" in refused.value.body and "zigzag" in refused.value.body


def test_an_invalid_flow_the_server_accepts_is_marked_invalid_and_runs_nothing(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    flow = {
        "metadata": {"name": "dangling"},
        "spec": {
            "root": {
                "name": "graph",
                "scope": "macro",
                "pattern": "dag",
                "units": [step("a"), {**step("b"), "dependsOn": ["nowhere"]}],
            }
        },
    }
    apply(cluster, namespace, flow)
    found = wait_phase(cluster, namespace, "dangling", ("Invalid",))
    valid = found["status"]["conditions"][0]
    assert (valid["type"], valid["status"]) == ("Valid", "False")
    assert "/spec/root/units/1/dependsOn" in valid["message"] and "nowhere" in valid["message"]
    core = client.CoreV1Api(cluster.api_client)
    assert core.list_namespaced_pod(namespace).items == []
    events = core.list_namespaced_event(namespace).items
    assert any(e.reason == "Invalid" and e.type == "Warning" for e in events)


def test_pods_are_made_lazily_within_max_active_and_the_flow_succeeds(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    with pod_log(cluster, namespace) as pods:
        apply(cluster, namespace, fanout("wide", 8, 3))
        found = wait_phase(cluster, namespace, "wide", ("Succeeded", "Failed"))
    status = found["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "8/8"
    assert len(pods.created) == 8
    assert 1 <= pods.peak <= 3
    assert status["sections"][0]["peakActive"] <= 3
    pod = client.CoreV1Api(cluster.api_client).list_namespaced_pod(namespace).items[0]
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("MetaFlow", "wide", True)


def test_a_failing_unit_fails_the_flow_with_its_reason(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    flow = {
        "metadata": {"name": "breaks"},
        "spec": {
            "root": {
                "name": "seq",
                "scope": "macro",
                "pattern": "sequence",
                "units": [
                    step("ok"),
                    step("boom", "kwok.meta-orchestrator.io/fail"),
                    step("never"),
                ],
            }
        },
    }
    apply(cluster, namespace, flow)
    status = wait_phase(cluster, namespace, "breaks", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Failed"
    assert status["failedUnit"] == "breaks/seq/boom"
    assert "exited with code 3" in status["reason"]
    core = client.CoreV1Api(cluster.api_client)
    names = {
        p.metadata.labels["meta-orchestrator.io/unit-name"]
        for p in core.list_namespaced_pod(namespace).items
    }
    assert names == {"ok", "boom"}, "nothing starts after the failure"
    events = core.list_namespaced_event(namespace).items
    assert any(e.reason == "UnitFailed" and "breaks/seq/boom" in e.message for e in events)


def test_a_killed_operator_restarts_and_finishes_without_recreating_a_finished_pod(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    with pod_log(cluster, namespace) as pods:
        apply(cluster, namespace, fanout("survivor", 9, 2, "kwok.meta-orchestrator.io/slow"))
        deadline = time.monotonic() + TIMEOUT
        while len(pods.ended) < 3:
            assert time.monotonic() < deadline, "no pod finished"
            time.sleep(0.1)
        operator.kill()
        ended_before = dict(pods.ended)
        time.sleep(1)
        operator.start()
        found = wait_phase(cluster, namespace, "survivor", ("Succeeded", "Failed"))
    assert found["status"]["phase"] == "Succeeded", found["status"]
    names = list(pods.created.values())
    assert len(names) == len(set(names)) == 9, "every unit had exactly one pod"
    assert set(ended_before) <= set(pods.created), "the pods finished before the kill are kept"
    assert pods.peak <= 2


def lease_holder(cluster: Cluster, namespace: str) -> str | None:
    coordination = client.CoordinationV1Api(cluster.api_client)
    try:
        lease = coordination.read_namespaced_lease(LEASE, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity


def holds(operator: Operator) -> str:
    """The start of the Lease's holderIdentity when this operator holds it."""
    assert operator.process is not None
    return f"{socket.gethostname()}-{operator.process.pid}-"


def test_a_standby_operator_takes_over_from_a_killed_one_without_recreating_a_finished_pod(
    cluster: Cluster, namespace: str, crd: None, tmp_path: Path
) -> None:
    elect = ("--leader-elect", "--lease-namespace", namespace)
    active = Operator(cluster, namespace, tmp_path / "active.log", options=elect)
    standby = Operator(cluster, namespace, tmp_path / "standby.log", options=elect)
    active.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (lease_holder(cluster, namespace) or "").startswith(holds(active)):
            assert time.monotonic() < deadline, "the first operator took no Lease"
            time.sleep(0.2)
        standby.start()
        with pod_log(cluster, namespace) as pods:
            apply(cluster, namespace, fanout("relay", 9, 2, "kwok.meta-orchestrator.io/slow"))
            while len(pods.ended) < 3:
                assert time.monotonic() < deadline, "no pod finished"
                time.sleep(0.1)
            assert (lease_holder(cluster, namespace) or "").startswith(holds(active))
            active.kill()
            ended_before = dict(pods.ended)
            found = wait_phase(cluster, namespace, "relay", ("Succeeded", "Failed"))
        holder = lease_holder(cluster, namespace) or ""
    finally:
        active.stop()
        standby.stop()
        sys.stderr.write(standby.log.read_text(errors="replace")[-4000:])
    assert found["status"]["phase"] == "Succeeded", found["status"]
    assert holder.startswith(holds(standby)), holder
    names = list(pods.created.values())
    assert len(names) == len(set(names)) == 9, "every unit had exactly one pod"
    assert set(ended_before) <= set(pods.created), "the pods finished before the kill are kept"
    assert pods.peak <= 2
    assert "acquired" in standby.log.read_text(errors="replace")


def test_deleting_a_metaflow_removes_its_pods(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    apply(cluster, namespace, fanout("doomed", 4, 2))
    wait_phase(cluster, namespace, "doomed", ("Succeeded",))
    core = client.CoreV1Api(cluster.api_client)
    assert core.list_namespaced_pod(namespace, label_selector=f"{FLOW_LABEL}=doomed").items
    client.CustomObjectsApi(cluster.api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "doomed"
    )
    deadline = time.monotonic() + 60
    while core.list_namespaced_pod(namespace, label_selector=f"{FLOW_LABEL}=doomed").items:
        assert time.monotonic() < deadline, "the garbage collector left pods behind"
        time.sleep(0.5)
    assert not core.list_namespaced_config_map(
        namespace, label_selector="meta-orchestrator.io/journal-of=doomed"
    ).items


def test_pod_gc_deletes_each_ended_pod_while_the_flow_runs(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    body = fanout("collected", 6, 2)
    body["spec"]["podGC"] = {"strategy": "OnPodCompletion"}
    core = client.CoreV1Api(cluster.api_client)
    with pod_log(cluster, namespace) as pods:
        apply(cluster, namespace, body)
        found = wait_phase(cluster, namespace, "collected", ("Succeeded", "Failed"))
    status = found["status"]
    assert status["phase"] == "Succeeded" and status["progress"] == "6/6", status
    assert len(pods.created) == 6 and set(pods.ended.values()) == {"Succeeded"}
    deadline = time.monotonic() + 30
    while core.list_namespaced_pod(namespace, label_selector=f"{FLOW_LABEL}=collected").items:
        assert time.monotonic() < deadline, "ended pods were left"
        time.sleep(0.5)
    records = [
        line
        for name in status["journal"]
        for text in (core.read_namespaced_config_map(name, namespace).data or {}).values()
        for line in text.splitlines()
    ]
    assert len(records) == 6, "every unit's outcome is in the journal"


PROBE = """
import asyncio, json, os, sys
from meta.kube.api import ApiFailed, ClientApi

async def probe():
    token = open(os.environ["TOKEN_FILE"]).read()
    api = ClientApi.with_token(os.environ["HOST"], token, os.environ["CA_FILE"])
    ns, own, other = os.environ["NS"], os.environ["OWN"], os.environ["OTHER"]
    results = {}
    attempts = {
        "patch own": api.patch_pod(ns, own, {"metadata": {"annotations": {"probe": "1"}}}),
        "get own": api.get_pod(ns, own),
        "patch other": api.patch_pod(ns, other, {"metadata": {"annotations": {"probe": "1"}}}),
        "get other": api.get_pod(ns, other),
        "list pods": api.list_pods(ns, ""),
        "get flow": api.get_flow(ns, "mixed"),
    }
    for what, call in attempts.items():
        try:
            await call
            results[what] = 200
        except ApiFailed as failed:
            results[what] = failed.status
    print(json.dumps(results))

asyncio.run(probe())
"""


def test_a_micro_section_is_one_pod_whose_quarterback_may_patch_that_pod_alone(
    cluster: Cluster, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    micro = {
        "name": "pod",
        "scope": "micro",
        "pattern": "fanout",
        "maxActive": 2,
        "over": {"input": "items"},
        "visit": step("item-{{ item }}", "python:3.11-slim"),
    }
    flow = {
        "metadata": {"name": "mixed"},
        "spec": {
            "inputs": {"items": {"value": [1, 2, 3]}},
            "root": {
                "name": "seq",
                "scope": "macro",
                "pattern": "sequence",
                "units": [step("before"), micro, step("after")],
            },
        },
    }
    apply(cluster, namespace, flow)
    status = wait_phase(cluster, namespace, "mixed", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status
    core = client.CoreV1Api(cluster.api_client)
    pods = {
        p.metadata.labels["meta-orchestrator.io/unit-name"]: p
        for p in core.list_namespaced_pod(namespace).items
    }
    assert set(pods) == {"before", "pod", "after"}, "the micro section is one pod"
    pod = pods["pod"]
    names = [c.name for c in pod.spec.containers]
    assert names == ["quarterback", "slot-0", "slot-1"]
    scratch = next(v for v in pod.spec.volumes if v.name == "scratch")
    assert scratch.empty_dir.medium == "Memory"
    account = pod.spec.service_account_name
    assert account == f"{pod.metadata.name}-qb"

    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    token = core.create_namespaced_service_account_token(account, namespace, request).status.token
    token_file = tmp_path / "token"
    token_file.write_text(token)
    configuration = cluster.api_client.configuration
    env = {
        **os.environ,
        "TOKEN_FILE": str(token_file),
        "HOST": configuration.host,
        "CA_FILE": configuration.ssl_ca_cert,
        "NS": namespace,
        "OWN": pod.metadata.name,
        "OTHER": pods["before"].metadata.name,
    }
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    results = json.loads(probe.stdout)
    assert results == {
        "patch own": 200,
        "get own": 403,
        "patch other": 403,
        "get other": 403,
        "list pods": 403,
        "get flow": 403,
    }


def test_the_deployed_rbac_is_all_the_operator_needs(
    cluster: Cluster, namespace: str, crd: None, tmp_path: Path
) -> None:
    """The RBAC of deploy/ (the chart's default rendering) applied as it is, and the operator
    run as its ServiceAccount (and as deployed, holding its Lease): macro pods, a micro pod
    with its quarterback's access, events and status all go through."""
    with contextlib.suppress(FailToCreateError):
        create_from_yaml(cluster.api_client, str(REPO / "deploy" / "namespace.yaml"))
    rendered = yaml.safe_load_all((REPO / "deploy" / "meta-orchestrator.yaml").read_text())
    for doc in rendered:
        if doc and doc["kind"] in RBAC_KINDS:
            with contextlib.suppress(FailToCreateError):
                create_from_dict(cluster.api_client, doc)
    core = client.CoreV1Api(cluster.api_client)
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    token = core.create_namespaced_service_account_token(
        "meta-orchestrator", "meta-system", request
    ).status.token
    configuration = cluster.api_client.configuration
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": configuration.host,
                            "certificate-authority": configuration.ssl_ca_cert,
                        },
                    }
                ],
                "users": [{"name": "meta-operator", "user": {"token": token}}],
                "contexts": [
                    {"name": "e2e", "context": {"cluster": "e2e", "user": "meta-operator"}}
                ],
                "current-context": "e2e",
            }
        )
    )
    # As deployed: one of two replicas, holding the Lease in its own namespace.
    elect = ("--leader-elect", "--lease-namespace", "meta-system")
    running = Operator(
        cluster, namespace, tmp_path / "operator.log", kubeconfig=kubeconfig, options=elect
    )
    running.start()
    try:
        micro = {
            "name": "pod",
            "scope": "micro",
            "pattern": "sequence",
            "units": [step("inner")],
        }
        flow = {
            "metadata": {"name": "least"},
            "spec": {
                "root": {
                    "name": "seq",
                    "scope": "macro",
                    "pattern": "sequence",
                    "units": [step("first"), micro],
                }
            },
        }
        apply(cluster, namespace, flow)
        status = wait_phase(cluster, namespace, "least", ("Succeeded", "Failed", "Invalid"))
    finally:
        running.stop()
    log = running.log.read_text(errors="replace")
    assert status["status"]["phase"] == "Succeeded", log[-3000:]
    assert "403" not in log and "Forbidden" not in log, log[-3000:]
    events = core.list_namespaced_event(namespace).items
    assert {"Started", "Succeeded"} <= {e.reason for e in events}


def test_meta_apply_of_a_flow_with_a_flow_ref_runs_the_reference_as_a_child_metaflow(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    """samples/macro-of-micro through `meta apply`: a macro dag of micro pods and a flowRef,
    which becomes a child MetaFlow owned by its parent; `meta status` tells how it went;
    deleting the parent removes the child and every pod."""
    sample = REPO / "samples" / "macro-of-micro" / "macro-of-micro.flow.yaml"
    env = cluster.env()
    applied = subprocess.run(
        [str(META), "apply", str(sample), "-n", namespace],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == f"metaflow {namespace}/macro-of-micro created"
    found = wait_phase(cluster, namespace, "macro-of-micro", ("Succeeded", "Failed", "Invalid"))
    assert found["status"]["phase"] == "Succeeded", found["status"]
    custom = client.CustomObjectsApi(cluster.api_client)
    flows = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    children = [f for f in flows if f["metadata"]["name"] != "macro-of-micro"]
    assert len(children) == 1
    child = children[0]
    assert child["metadata"]["ownerReferences"][0]["name"] == "macro-of-micro"
    assert child["metadata"]["annotations"]["meta-orchestrator.io/within"] == (
        "macro-of-micro/describe-numbers/middle"
    )
    assert child["status"]["phase"] == "Succeeded"
    given = child["spec"]["inputs"]["numbers"]["path"]
    assert given.endswith("/.files/data/numbers.json"), "the parent's embedded file, by its path"
    core = client.CoreV1Api(cluster.api_client)
    pods = core.list_namespaced_pod(namespace).items
    scopes = sorted(p.metadata.labels.get("meta-orchestrator.io/scope", "macro") for p in pods)
    assert scopes == ["macro", "macro", "micro", "micro"], "report, median, stats, squares"
    told = subprocess.run(
        [str(META), "status", "macro-of-micro", "-n", namespace],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert told.returncode == 0, told.stderr
    assert told.stdout.startswith(f"{namespace}/macro-of-micro: succeeded\n")
    assert "condition Valid=True" in told.stdout
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "macro-of-micro")
    deadline = time.monotonic() + 60
    while core.list_namespaced_pod(namespace).items or len(
        custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    ):
        assert time.monotonic() < deadline, "the child flow or its pods outlived the parent"
        time.sleep(0.5)


def test_on_failure_continue_and_finally_in_the_cluster(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    """Under `continue` the failed unit's dependant is skipped and the rest runs; the section's
    and the flow's finally units run after it, each as a pod; the status names every failure
    and counts the skipped unit, the journal has every record."""
    fail = "kwok.meta-orchestrator.io/fail"
    flow = {
        "metadata": {"name": "carry-on"},
        "spec": {
            "root": {
                "name": "d",
                "scope": "macro",
                "pattern": "dag",
                "onFailure": "continue",
                "units": [
                    step("a", fail),
                    {**step("b"), "dependsOn": ["a"]},
                    step("c"),
                    step("e", fail),
                ],
                "finally": [step("tidy")],
            },
            "finally": [step("notify-{{ upstream.d.state }}")],
        },
    }
    with pod_log(cluster, namespace) as pods:
        apply(cluster, namespace, flow)
        found = wait_phase(cluster, namespace, "carry-on", ("Succeeded", "Failed"))
    status = found["status"]
    assert status["phase"] == "Failed", status
    assert sorted(status["failedUnits"]) == ["carry-on/d/a", "carry-on/d/e"]
    assert status["failedUnit"] in status["failedUnits"]
    assert (status["skipped"], status["failed"], status["succeeded"]) == (1, 2, 3)
    core = client.CoreV1Api(cluster.api_client)
    names = {
        p.metadata.labels["meta-orchestrator.io/unit-name"]
        for p in core.list_namespaced_pod(namespace).items
    }
    assert names == {"a", "c", "e", "tidy", "notify-failed"}
    assert len(pods.created) == 5
    records = [
        json.loads(line)
        for chunk in status["journal"]
        for text in (core.read_namespaced_config_map(chunk, namespace).data or {}).values()
        for line in text.splitlines()
    ]
    by_id = {record["id"]: record for record in records}
    assert by_id["carry-on/d/b"]["state"] == "skipped"
    assert by_id["carry-on/d/b"]["reason"] == "upstream-failed"
    assert by_id["carry-on/d/finally/tidy"]["state"] == "succeeded"
    assert by_id["carry-on/finally/notify-failed"]["state"] == "succeeded"


def test_a_false_when_skips_a_unit_without_a_pod_and_downstream_sees_it_skipped(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    later = {
        "name": "later",
        "dependsOn": ["first", "off", "pod"],
        "run": {
            "image": "busybox",
            "command": ["echo", "{{ upstream.off.state }}", "{{ upstream.pod.state }}"],
        },
    }
    micro = {
        "name": "pod",
        "scope": "micro",
        "pattern": "sequence",
        "when": "inputs.flag",
        "units": [step("inside")],
    }
    flow = {
        "metadata": {"name": "gated"},
        "spec": {
            "inputs": {"flag": {"value": False}},
            "root": {
                "name": "d",
                "scope": "macro",
                "pattern": "dag",
                "units": [
                    step("first"),
                    {**step("off"), "when": "{{ inputs.flag }}"},
                    micro,
                    later,
                ],
            },
        },
    }
    apply(cluster, namespace, flow)
    found = wait_phase(cluster, namespace, "gated", ("Succeeded", "Failed"))
    status = found["status"]
    assert status["phase"] == "Succeeded", status
    assert (status["skipped"], status["succeeded"], status["progress"]) == (2, 2, "4/4")
    core = client.CoreV1Api(cluster.api_client)
    pods = {
        p.metadata.labels["meta-orchestrator.io/unit-name"]: p
        for p in core.list_namespaced_pod(namespace).items
    }
    assert set(pods) == {"first", "later"}, "a skipped unit has no pod"
    assert pods["later"].spec.containers[0].command == ["echo", "skipped", "skipped"]
    journal = core.list_namespaced_config_map(
        namespace, label_selector="meta-orchestrator.io/journal-of=gated"
    ).items
    records = [
        json.loads(line)
        for config_map in journal
        for text in (config_map.data or {}).values()
        for line in text.splitlines()
    ]
    skipped = sorted((r["id"], r["reason"]) for r in records if r["state"] == "skipped")
    assert skipped == [("gated/d/off", "condition"), ("gated/d/pod", "condition")]
    shown = subprocess.run(
        [str(META), "status", "gated", "-n", namespace, "-o", "json"],
        env=cluster.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(shown.stdout)["units"]["skipped"] == 2


def test_a_child_flow_sees_the_states_of_the_units_that_feed_its_flow_ref(
    cluster: Cluster, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    """What feeds a flowRef reaches its child MetaFlow through the store, skipped units too."""
    head = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetaFlow"}
    echo = {"image": "busybox", "command": ["echo", "{{ upstream.off.state }}"]}
    child = {
        **head,
        "metadata": {"name": "child"},
        "spec": {"root": {"name": "inner", "run": echo}},
    }
    (tmp_path / "child.flow.yaml").write_text(yaml.safe_dump(child))
    parent = {
        **head,
        "metadata": {"name": "parent"},
        "spec": {
            "root": {
                "name": "d",
                "scope": "macro",
                "pattern": "dag",
                "units": [
                    {**step("off"), "when": "false"},
                    {"name": "ref", "flowRef": {"path": "child.flow.yaml"}, "dependsOn": ["off"]},
                ],
            }
        },
    }
    (tmp_path / "parent.flow.yaml").write_text(yaml.safe_dump(parent))
    applied = subprocess.run(
        [str(META), "apply", str(tmp_path / "parent.flow.yaml"), "-n", namespace],
        env=cluster.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    found = wait_phase(cluster, namespace, "parent", ("Succeeded", "Failed", "Invalid"))
    assert found["status"]["phase"] == "Succeeded", found["status"]
    assert found["status"]["skipped"] == 1
    (pod,) = client.CoreV1Api(cluster.api_client).list_namespaced_pod(namespace).items
    assert pod.spec.containers[0].command == ["echo", "skipped"]
