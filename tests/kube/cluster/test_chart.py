"""Installing it as users do: the Helm chart (linted, rendered, installed into a namespace that
enforces the restricted Pod Security Standard), the plain manifests of deploy/ rendered from it,
and the CRD applied by a client-side `kubectl apply`. helm and kubectl are built from Go modules
(tests/e2e/cluster/build-tools.sh; kubectl is the plane's version)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.kube.cluster.conftest import REPO, Cluster, RealNode
from tests.kube.cluster.operating import META, wait_phase

CHART = REPO / "charts" / "meta-orchestrator"
DEPLOY = REPO / "deploy"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ANNOTATIONS_LIMIT = 256 * 1024


def run(tool: Path, *args: str, cluster: Cluster | None = None) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tool.parent)}
    if cluster is not None:
        env["KUBECONFIG"] = str(cluster.kubeconfig)
    done = subprocess.run(
        [str(tool), *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )
    assert done.returncode == 0, f"{tool.name} {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def render(tools: Path, *values: str, namespace: str = "meta-system") -> list[dict[str, Any]]:
    text = run(
        tools / "helm", "template", "meta-orchestrator", str(CHART), "--namespace", namespace,
        *(arg for value in values for arg in ("--set", value)),
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_the_chart_passes_helm_lint(tools: Path) -> None:
    run(tools / "helm", "lint", "--strict", str(CHART))
    run(tools / "helm", "lint", "--strict", str(CHART), "--set", "watchNamespaces={a,b}")


def test_rbac_is_cluster_wide_or_per_watched_namespace(tools: Path) -> None:
    cluster_wide = render(tools)
    (role,) = by_kind(cluster_wide, "ClusterRole")
    assert any("pods" in rule["resources"] for rule in role["rules"])
    assert by_kind(cluster_wide, "Role")[0]["metadata"]["name"].endswith("-leader")
    args = by_kind(cluster_wide, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert not [a for a in args["args"] if a.startswith("--namespace")]

    scoped = render(tools, "watchNamespaces={team-a,team-b}")
    (role,) = by_kind(scoped, "ClusterRole")
    assert all("pods" not in rule["resources"] for rule in role["rules"]), "reads only"
    roles = {r["metadata"]["namespace"]: r for r in by_kind(scoped, "Role")}
    assert set(roles) == {"team-a", "team-b", "meta-system"}
    assert any("pods" in rule["resources"] for rule in roles["team-a"]["rules"])
    bindings = {b["metadata"]["namespace"] for b in by_kind(scoped, "RoleBinding")}
    assert bindings == {"team-a", "team-b", "meta-system"}
    container = by_kind(scoped, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert {"--namespace=team-a", "--namespace=team-b"} <= set(container["args"])


def test_the_deployment_is_two_probed_restricted_replicas(tools: Path) -> None:
    docs = render(tools, "store.claim=store", "apiBudget.qps=7", "pods.nodeSelector.pool=flows")
    (deployment,) = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    assert {
        "--store-claim=store", "--qps=7", "--node-selector=pool=flows", "--metrics-port=9090",
        "--health-port=8080", "--image=meta-orchestrator:0.1.0",
    } <= set(container["args"])  # fmt: skip
    (service,) = by_kind(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_deploy_holds_the_charts_default_rendering(tools: Path) -> None:
    """deploy/ is the chart rendered for users without Helm (`kubectl apply -k deploy/`)."""
    rendered = run(
        tools / "helm", "template", "meta-orchestrator", str(CHART), "--namespace", "meta-system"
    )
    header = "# Rendered from charts/meta-orchestrator by `make deploy-manifests`: do not edit.\n"
    committed = (DEPLOY / "meta-orchestrator.yaml").read_text()
    assert committed == header + rendered, (
        "deploy/meta-orchestrator.yaml is stale: run `make deploy-manifests`"
    )
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["namespace.yaml", "meta-orchestrator.yaml"]
    out = run(tools / "kubectl", "kustomize", str(DEPLOY))
    kinds = [doc["kind"] for doc in yaml.safe_load_all(out) if doc]
    assert {"Namespace", "ServiceAccount", "ClusterRole", "Deployment", "Service"} <= set(kinds)


@pytest.fixture
def release(cluster: Cluster, namespace: str, tools: Path) -> Iterator[str]:
    name = f"meta-orchestrator-{namespace}"
    try:
        yield name
    finally:
        subprocess.run(
            [str(tools / "helm"), "uninstall", name, "--namespace", namespace],
            env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(cluster.kubeconfig)},
            capture_output=True,
            timeout=120,
            check=False,
        )


def test_the_chart_installs_and_its_replicas_pass_restricted_admission(
    cluster: Cluster, namespace: str, tools: Path, release: str, crd: None
) -> None:
    run(
        tools / "helm", "install", release, str(CHART), "--namespace", namespace,
        "--set", f"watchNamespaces={{{namespace}}}", cluster=cluster,
    )  # fmt: skip
    apps = client.AppsV1Api(cluster.api_client)
    core = client.CoreV1Api(cluster.api_client)
    deployment = apps.read_namespaced_deployment(release, namespace)
    assert deployment.spec.replicas == 2
    assert core.read_namespaced_service(f"{release}-metrics", namespace).spec.ports[0].port == 9090
    rbac = client.RbacAuthorizationV1Api(cluster.api_client)
    assert rbac.read_namespaced_role_binding(release, namespace).subjects[0].name == release
    # The replica set's pods are created (the namespace's restricted admission takes them); a
    # refusal shows as a FailedCreate condition of the replica set instead.
    selector = f"app.kubernetes.io/instance={release}"
    deadline = time.monotonic() + 60
    while len(pods := core.list_namespaced_pod(namespace, label_selector=selector).items) < 2:
        for replicas in apps.list_namespaced_replica_set(namespace, label_selector=selector).items:
            for condition in replicas.status.conditions or []:
                assert condition.type != "ReplicaFailure", condition.message
        assert time.monotonic() < deadline, "the replica set made no two pods within 60 s"
        time.sleep(0.5)
    assert {p.spec.security_context.run_as_user for p in pods} == {10001}


def test_the_charts_operator_runs_a_flow_from_inside_the_cluster(
    cluster: Cluster, namespace: str, real_node: RealNode, tools: Path, release: str, crd: None
) -> None:
    """The operator as the chart runs it (its image, uid 10001, read-only root, its RBAC, its
    probes on kopf's /healthz, its /metrics), on the real node, runs a sample to its end."""
    image = "docker.io/library/meta-sample-tree-sum"  # the framework image and the sample's files
    values = (
        f"image.repository={image}", "image.tag=0.1.0", "image.pullPolicy=Never",
        "pods.imagePullPolicy=Never", f"watchNamespaces={{{namespace}}}",
        f"store.claim={real_node.claim}", f"store.operatorClaim={real_node.claim}",
        f"pods.apiServer={real_node.api_server}", "replicaCount=0",
        # No scheduler in the test plane: flow pods are bound to the node by the operator.
        f"extraArgs={{--node-name={real_node.name}}}",
    )  # fmt: skip
    run(
        tools / "helm", "install", release, str(CHART), "--namespace", namespace,
        *(arg for value in values for arg in ("--set", value)), cluster=cluster,
    )  # fmt: skip
    # The test plane has neither a scheduler nor kube-proxy: the Deployment's own pod template,
    # bound to the real node, told where the API server is.
    apps = client.AppsV1Api(cluster.api_client)
    core = client.CoreV1Api(cluster.api_client)
    template = cluster.api_client.sanitize_for_serialization(
        apps.read_namespaced_deployment(release, namespace).spec.template
    )
    spec = {**template["spec"], "nodeName": real_node.name}
    host, port = real_node.api_server.rsplit(":", 1)
    spec["containers"][0]["env"] += [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
    ]
    metadata = {"name": "operator", "labels": template["metadata"]["labels"]}
    core.create_namespaced_pod(
        namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    )
    deadline = time.monotonic() + 120
    while True:
        pod = core.read_namespaced_pod("operator", namespace)
        ready = {c.type: c.status for c in pod.status.conditions or []}.get("Ready")
        if ready == "True":
            break
        if time.monotonic() > deadline:
            log = core.read_namespaced_pod_log("operator", namespace)[-3000:]
            raise AssertionError(f"not Ready: {pod.status.container_statuses}\n{log}")
        time.sleep(1)
    flow_file = REPO / "samples" / "tree-sum" / "tree-sum.flow.yaml"
    subprocess.run(
        [str(META), "apply", str(flow_file), "-n", namespace], env=cluster.env(), check=True
    )
    status = wait_phase(cluster, namespace, "tree-sum", ("Succeeded", "Failed"), 300)["status"]
    logs = core.read_namespaced_pod_log("operator", namespace)[-3000:]
    assert status["phase"] == "Succeeded", (status.get("reason"), logs)
    outputs = real_node.store / Path(status["outputs"]).relative_to("/store")
    assert (outputs / "sum.txt").read_text() == "42\n"
    address = f"http://{pod.status.pod_ip}:9090/metrics"
    with urllib.request.urlopen(address, timeout=10) as response:
        text = response.read().decode()
    assert 'meta_flows{phase="Succeeded"} 1.0' in text
    assert 'meta_units_finished_total{outcome="succeeded"}' in text


def test_the_crd_applies_client_side_with_kubectl_and_room_to_grow(
    cluster: Cluster, tools: Path, crd: None
) -> None:
    crd_file = REPO / "crds" / "metaflow.yaml"
    run(tools / "kubectl", "apply", "-f", str(crd_file), cluster=cluster)
    out = run(
        tools / "kubectl", "get", "crd", "metaflows.meta-orchestrator.io", "-o", "json",
        cluster=cluster,
    )  # fmt: skip
    annotations = json.loads(out)["metadata"]["annotations"]
    size = sum(len(k) + len(v) for k, v in annotations.items())
    applied = json.loads(annotations[LAST_APPLIED])
    assert applied["metadata"]["name"] == "metaflows.meta-orchestrator.io"
    assert size < ANNOTATIONS_LIMIT * 3 // 4, (
        f"the CRD's annotations take {size} bytes after a client-side apply; the API server "
        f"refuses more than {ANNOTATIONS_LIMIT}: make the CRD smaller"
    )
