"""The chart's two replicas, one active: the active operator crashes mid-flow, the standby takes
the Lease over and finishes the flow without creating again a pod that had finished.

The operators run on the real node (the framework image, as the chart runs it); the flow's pods
on the kwok node, three seconds each (`kwok.meta-orchestrator.io/slow`), so that the flow is
still running when the kill comes.

The kill is a SIGKILL of the operator's process, sent from this host (the real node's containers
share its pid namespace), not a pod deletion: deleting the pod, even with a grace period of 0,
has the kubelet stop the container with SIGTERM first, and the operator then hands the Lease back
(`Leadership.release`), so a standby takes over at once. A crash (the OOM killer, a lost node)
releases nothing: the standby must wait for the Lease to expire, which is what this measures.
The kubelet restarts the killed container in the same pod; its new process is a new candidate
(its identity differs), which sees the Lease only from its start, so the standby, which has
watched it all along, sees it expire first.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kube.cluster.conftest import KWOK_SELECTOR, KWOK_TOLERATION, Cluster, RealNode
from tests.kube.cluster.operating import apply, pod_log, wait_phase
from tests.kube.cluster.users import install

LEASE = "meta-orchestrator-operator"
# What the operator uses and the chart does not change (meta.kube.lease.LeaseSettings).
LEASE_DURATION, RENEW_DEADLINE, RETRY = 15, 10, 2
ITEMS = 9


def lease_holder(cluster: Cluster, namespace: str) -> str:
    coordination = client.CoordinationV1Api(cluster.api_client)
    try:
        return coordination.read_namespaced_lease(LEASE, namespace).spec.holder_identity or ""
    except ApiException as exc:
        if exc.status == 404:
            return ""
        raise


def holder_pod(holder: str, pods: list[str]) -> str | None:
    """The pod whose process holds the Lease (its identity starts with the pod's hostname)."""
    return next((pod for pod in pods if holder.startswith(f"{pod}-")), None)


def operator_process(namespace: str, pod: str) -> int:
    """The pid, on this host, of the operator's process in `pod`."""
    wanted = f"POD_NAME={pod}".encode(), f"POD_NAMESPACE={namespace}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        if all(w in environ for w in wanted) and b"operator" in command:
            found.append(int(entry.name))
    assert len(found) == 1, f"operator processes of {pod}: {found}"
    return found[0]


def slow_fanout(name: str) -> dict[str, Any]:
    step = {"image": "kwok.meta-orchestrator.io/slow", "command": ["sh", "-c", "true"]}
    return {
        "metadata": {"name": name},
        "spec": {
            "inputs": {"items": {"value": list(range(ITEMS))}},
            "root": {
                "name": "each",
                "scope": "macro",
                "pattern": "fanout",
                "maxActive": 2,
                "over": {"input": "items"},
                "visit": {"name": "item-{{ item }}", "run": step},
            },
        },
    }


def test_a_standby_replica_takes_over_from_a_crashed_active_one_without_recreating_a_pod(
    cluster: Cluster, namespace: str, real_node: RealNode, tools: Path, release: str, crd: None
) -> None:
    ((key, value),) = real_node.selector.items()
    ((flow_key, flow_value),) = KWOK_SELECTOR.items()
    values = (
        f"watchNamespaces={{{namespace}}}", f"nodeSelector.{key}={value}",
        f"pods.nodeSelector.{flow_key}={flow_value}",
        f"pods.tolerations={{{KWOK_TOLERATION['key']}:NoSchedule}}",
    )  # fmt: skip
    install(tools, cluster, release, namespace, *values)
    core = client.CoreV1Api(cluster.api_client)
    selector = f"app.kubernetes.io/instance={release}"
    replicas = [
        p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=selector).items
    ]
    assert len(replicas) == 2, replicas
    deadline = time.monotonic() + 60
    while (active := holder_pod(lease_holder(cluster, namespace), replicas)) is None:
        assert time.monotonic() < deadline, "no replica took the Lease"
        time.sleep(0.2)
    (standby,) = set(replicas) - {active}

    with pod_log(cluster, namespace) as pods:
        apply(cluster, namespace, slow_fanout("relay"))
        deadline = time.monotonic() + 120
        while len(pods.ended) < 3:
            assert time.monotonic() < deadline, "no three pods finished"
            time.sleep(0.1)
        killed_holder = lease_holder(cluster, namespace)
        assert holder_pod(killed_holder, replicas) == active
        os.kill(operator_process(namespace, active), signal.SIGKILL)
        killed = time.monotonic()
        ended_before = dict(pods.ended)
        created_before = len(pods.created)
        # The bound: a Lease duration after the last renewal the standby saw (at most a retry
        # before the kill), a retry until its next try, and a renew deadline of slack for a
        # loaded API server.
        bound = LEASE_DURATION + 2 * RETRY + RENEW_DEADLINE
        while (holder := lease_holder(cluster, namespace)) == killed_holder:
            assert time.monotonic() < killed + bound, f"the Lease not taken over in {bound} s"
            time.sleep(0.1)
        took_over = time.monotonic() - killed
        while len(pods.created) == created_before:
            assert time.monotonic() < killed + bound + 30, "no new pod after the take-over"
            time.sleep(0.1)
        resumed = time.monotonic() - killed
        found = wait_phase(cluster, namespace, "relay", ("Succeeded", "Failed"), 180)
    logs = {pod: core.read_namespaced_pod_log(pod, namespace)[-3000:] for pod in (active, standby)}
    print(
        f"[failover] Lease taken over {took_over:.1f} s after the SIGKILL, the first new pod "
        f"{resumed:.1f} s after (duration {LEASE_DURATION} s, renew deadline {RENEW_DEADLINE} s, "
        f"retry {RETRY} s)"
    )
    assert holder_pod(holder, replicas) == standby, (holder, logs)
    assert found["status"]["phase"] == "Succeeded", (found["status"], logs)
    names = list(pods.created.values())
    assert len(names) == len(set(names)) == ITEMS, ("every unit had exactly one pod", names)
    assert set(ended_before) <= set(pods.created), "the pods finished before the kill are kept"
    restarted = core.read_namespaced_pod(active, namespace).status.container_statuses[0]
    assert restarted.restart_count >= 1, "the kill was a crash of the container, not a stop"
