"""The test control plane itself: version, kwok's pod stages, garbage collection, TokenRequest.

These pin what the operator's tests rely on (see tests/kube/cluster/conftest.py and
tests/e2e/cluster/up.sh).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

# The `cluster` fixture's object (tests/kube/cluster/conftest.py: Cluster), not imported from
# conftest so that this module loads however pytest is started.
Cluster = Any

K8S_VERSION = "v1.36.3"
# The test namespaces enforce the restricted Pod Security Standard (conftest.py).
RESTRICTED_POD = client.V1PodSecurityContext(
    run_as_non_root=True,
    run_as_user=10001,
    seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
)
RESTRICTED_CONTAINER = client.V1SecurityContext(
    allow_privilege_escalation=False, capabilities=client.V1Capabilities(drop=["ALL"])
)
RESULT = "meta-orchestrator.io/kwok-result"
DELAY = "meta-orchestrator.io/kwok-delay"


def kwok_pod(
    cluster: Cluster,
    name: str,
    annotations: dict[str, str] | None = None,
    images: tuple[str, ...] = ("example.invalid/step:1",),
) -> client.V1Pod:
    containers = [
        client.V1Container(name=f"c{i}", image=image, security_context=RESTRICTED_CONTAINER)
        for i, image in enumerate(images)
    ]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations),
        spec=client.V1PodSpec(
            node_selector=cluster.selector,
            tolerations=[client.V1Toleration(**cluster.toleration)],
            restart_policy="Never",
            security_context=RESTRICTED_POD,
            containers=containers,
        ),
    )


def wait_for_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    done: Callable[[str, client.V1Pod], bool],
    timeout: int = 60,
    since: str | None = None,
) -> client.V1Pod:
    """Watch one pod until done(event type, pod) holds; fail after timeout seconds.

    From its current state, or from the events after resource version `since`.
    """
    last: Any = None
    w = watch.Watch()
    options = {} if since is None else {"resource_version": since}
    for event in w.stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=timeout,
        **options,
    ):
        last = event["object"]
        if done(event["type"], last):
            w.stop()
            return last
    status = None if last is None else last.status
    raise AssertionError(
        f"pod {namespace}/{name}: not there within {timeout} s; last status {status}"
    )


def is_deleted(event_type: str, _pod: client.V1Pod) -> bool:
    return event_type == "DELETED"


def phase_is(*phases: str) -> Callable[[str, client.V1Pod], bool]:
    return lambda _type, pod: pod.status is not None and pod.status.phase in phases


def test_version(cluster: Cluster) -> None:
    info = client.VersionApi(cluster.api_client).get_code()
    if cluster.owned:
        assert info.git_version == K8S_VERSION
    else:
        assert info.git_version.startswith("v1.")


def test_the_fake_node_is_ready_labelled_and_tainted(cluster: Cluster) -> None:
    node = client.CoreV1Api(cluster.api_client).read_node(cluster.node_name)
    assert node.metadata.labels["type"] == "kwok"
    assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
        ("kwok.x-k8s.io/node", "fake", "NoSchedule")
    ]
    ready = [c.status for c in node.status.conditions if c.type == "Ready"]
    assert ready == ["True"]


def test_a_pod_on_the_kwok_node_succeeds(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_pod(namespace, kwok_pod(cluster, "ok"))
    seen: list[str] = []

    def done(_type: str, pod: client.V1Pod) -> bool:
        seen.append(pod.status.phase)
        return bool(pod.status.phase in ("Succeeded", "Failed"))

    pod = wait_for_pod(core, namespace, "ok", done)
    assert pod.status.phase == "Succeeded"
    assert pod.spec.node_name == cluster.node_name, "the scheduler placed it by its selector"
    assert "Running" in seen
    (status,) = pod.status.container_statuses
    assert status.state.terminated.exit_code == 0
    assert status.state.terminated.reason == "Completed"


def test_a_pod_annotated_failed_fails_with_exit_code_3(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_pod(namespace, kwok_pod(cluster, "bad", {RESULT: "failed", DELAY: "0s"}))
    pod = wait_for_pod(core, namespace, "bad", phase_is("Succeeded", "Failed"))
    assert pod.status.phase == "Failed"
    (status,) = pod.status.container_statuses
    assert status.state.terminated.exit_code == 3
    assert status.state.terminated.reason == "Error"


def test_without_annotation_the_images_decide(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    images = ("example.invalid/ok:1", "kwok.meta-orchestrator.io/fail")
    core.create_namespaced_pod(namespace, kwok_pod(cluster, "by-image", images=images))
    core.create_namespaced_pod(
        namespace, kwok_pod(cluster, "slow", images=("kwok.meta-orchestrator.io/slow",))
    )
    failed = wait_for_pod(core, namespace, "by-image", phase_is("Succeeded", "Failed"))
    assert failed.status.phase == "Failed"
    codes = {s.image: s.state.terminated.exit_code for s in failed.status.container_statuses}
    assert codes == {"example.invalid/ok:1": 0, "kwok.meta-orchestrator.io/fail": 3}
    slow = wait_for_pod(core, namespace, "slow", phase_is("Succeeded", "Failed"))
    assert slow.status.phase == "Succeeded"
    (status,) = slow.status.container_statuses
    assert (status.state.terminated.finished_at - slow.status.start_time).total_seconds() >= 2.5


def test_a_hanging_pod_stays_running_until_deleted(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_pod(namespace, kwok_pod(cluster, "hang", {RESULT: "hang", DELAY: "0s"}))
    wait_for_pod(core, namespace, "hang", phase_is("Running"))
    with pytest.raises(AssertionError, match="not there within 3 s"):
        wait_for_pod(core, namespace, "hang", phase_is("Succeeded", "Failed"), timeout=3)
    deleting = core.delete_namespaced_pod("hang", namespace)  # kwok removes it at once
    since = deleting.metadata.resource_version
    wait_for_pod(core, namespace, "hang", is_deleted, timeout=30, since=since)


def test_deleting_an_owner_collects_its_dependent(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    dependent = core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        field_selector="metadata.name=dependent",
        resource_version=dependent.metadata.resource_version,
        timeout_seconds=30,
    ):
        if event["type"] == "DELETED":
            w.stop()
            break
    else:
        raise AssertionError("the dependent ConfigMap was not garbage-collected within 30 s")


def test_a_token_from_token_request_authenticates(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    name = "e2e-reader"
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = core.create_namespaced_service_account_token(name, namespace, request).status.token

    def client_with(bearer: str) -> client.ApiClient:
        base = cluster.api_client.configuration
        conf = client.Configuration()
        conf.host = base.host
        conf.ssl_ca_cert = base.ssl_ca_cert
        conf.verify_ssl = base.verify_ssl
        conf.api_key = {"authorization": bearer}
        conf.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(conf)

    with client_with(token) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:{name}"
        with pytest.raises(ApiException) as forbidden:
            client.CoreV1Api(api).list_namespaced_secret("kube-system")
        assert forbidden.value.status == 403  # authenticated, and RBAC says no

    with client_with(secrets.token_urlsafe(32)) as api, pytest.raises(ApiException) as unknown:
        client.CoreV1Api(api).list_namespaced_secret("kube-system")
    assert unknown.value.status == 401
