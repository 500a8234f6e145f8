"""The real node as a node of an ordinary cluster: the scheduler places pods by their selector,
pods reach the API server through the `kubernetes` Service (kube-proxy), and the kubelet pulls
an image it lacks from the plane's registry."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from meta.kube.layout import container_security, pod_security
from meta.kube.types import PodSettings
from tests.kube.cluster.conftest import Cluster, RealNode
from tests.kube.cluster.registry import push_static_image

FRAMEWORK_IMAGE = "meta-orchestrator:0.1.0"
TIMEOUT = 120
RESTRICTED = {"securityContext": pod_security(PodSettings())}
"""The test namespaces enforce the restricted Pod Security Standard: these pods pass it as the
operator's own do."""

REACH_API = """
import json, os, ssl, urllib.request
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
account = "/var/run/secrets/kubernetes.io/serviceaccount"
context = ssl.create_default_context(cafile=f"{account}/ca.crt")
token = open(f"{account}/token").read()
request = urllib.request.Request(
    f"https://{host}:{port}/version", headers={"Authorization": f"Bearer {token}"}
)
with urllib.request.urlopen(request, context=context, timeout=20) as answer:
    version = json.load(answer)["gitVersion"]
print(json.dumps({"host": host, "port": port, "version": version}))
"""


def run_pod(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> client.V1Pod:
    """Create the pod and wait for it to end."""
    name = body["metadata"]["name"]
    core.create_namespaced_pod(namespace, body)
    deadline = time.monotonic() + TIMEOUT
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase in ("Succeeded", "Failed"):
            return pod
        assert time.monotonic() < deadline, f"{name} did not end: {pod.status}"
        time.sleep(0.3)


def events(core: client.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str]]:
    found = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [
        (e.reason, e.reporting_component or e.source.component or "", e.message)
        for e in found.items
    ]


def test_a_scheduled_pod_reaches_the_api_server_through_the_kubernetes_service(
    cluster: Cluster, namespace: str, real_node: RealNode
) -> None:
    core = client.CoreV1Api(cluster.api_client)
    pod = run_pod(
        core,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reach"},
            "spec": {
                **RESTRICTED,
                "restartPolicy": "Never",
                "nodeSelector": real_node.selector,
                "containers": [
                    {
                        "name": "c",
                        "securityContext": container_security(),
                        "image": FRAMEWORK_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python3", "-c", REACH_API],
                    }
                ],
            },
        },
    )
    log = core.read_namespaced_pod_log("reach", namespace)
    assert pod.status.phase == "Succeeded", log
    assert pod.spec.node_name == real_node.name
    assert any(
        reason == "Scheduled" and component == "default-scheduler"
        for reason, component, _ in events(core, namespace, "reach")
    )
    service = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert json.loads(log.strip().splitlines()[-1]) == {
        "host": service,
        "port": "443",
        "version": client.VersionApi(cluster.api_client).get_code().git_version,
    }


def test_the_kubelet_pulls_an_image_it_lacks_from_the_registry(
    cluster: Cluster, namespace: str, real_node: RealNode
) -> None:
    assert cluster.state_dir is not None
    pushed = push_static_image(real_node.registry, f"e2e/{namespace}", Path("/usr/bin/catatonit"))
    core = client.CoreV1Api(cluster.api_client)
    pod = run_pod(
        core,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pulled"},
            "spec": {
                **RESTRICTED,
                "restartPolicy": "Never",
                "nodeSelector": real_node.selector,
                "containers": [
                    {
                        "name": "c",
                        "securityContext": container_security(),
                        "image": pushed.reference,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--version"],
                    }
                ],
            },
        },
    )
    assert pod.status.phase == "Succeeded", pod.status
    assert "catatonit" in core.read_namespaced_pod_log("pulled", namespace)
    (status,) = pod.status.container_statuses
    assert status.image_id.endswith(pushed.digest)
    assert any(
        reason == "Pulled" and "Successfully pulled" in message
        for reason, _, message in events(core, namespace, "pulled")
    )
    # The registry served the layer, which existed nowhere else, to the node's containerd.
    served = (cluster.state_dir / "logs" / "registry.log").read_text(errors="replace")
    layer = pushed.blobs[-1]
    assert any(
        f"GET /v2/e2e/{namespace}/blobs/{layer}" in line and "containerd" in line
        for line in served.splitlines()
    )
