"""Installing it as users do: the Helm chart (linted, rendered, installed into a namespace that
enforces the restricted Pod Security Standard), the plain manifests of deploy/ rendered from it,
and the CRD applied by a client-side `kubectl apply`. helm and kubectl are built from Go modules
(tests/e2e/cluster/build-tools.sh; kubectl is the plane's version)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.stream import stream

from tests.kube.cluster.conftest import REPO, Cluster, RealNode
from tests.kube.cluster.operating import META, wait_phase
from tests.kube.cluster.users import CHART, install, on_the_real_node, run

DEPLOY = REPO / "deploy"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ANNOTATIONS_LIMIT = 256 * 1024


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
    """The operator as the chart runs it (two replicas scheduled onto the real node, its image,
    uid 10001, read-only root, its RBAC, its Lease, probes on kopf's /healthz, its /metrics),
    installed with `helm install --wait`, runs a sample to its end."""
    install(tools, cluster, release, namespace, *on_the_real_node(real_node, namespace))
    core = client.CoreV1Api(cluster.api_client)
    selector = f"app.kubernetes.io/instance={release}"
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    assert len(pods) == 2 and {p.spec.node_name for p in pods} == {real_node.name}
    flow_file = REPO / "samples" / "tree-sum" / "tree-sum.flow.yaml"
    subprocess.run(
        [str(META), "apply", str(flow_file), "-n", namespace], env=cluster.env(), check=True
    )
    status = wait_phase(cluster, namespace, "tree-sum", ("Succeeded", "Failed"), 300)["status"]
    logs = [core.read_namespaced_pod_log(p.metadata.name, namespace)[-2000:] for p in pods]
    assert status["phase"] == "Succeeded", (status.get("reason"), logs)
    outputs = real_node.store / Path(status["outputs"]).relative_to("/store")
    assert (outputs / "sum.txt").read_text() == "42\n"
    # Scraped from inside each pod (the pod network is the node's own, behind its veth).
    scrape = "import urllib.request; print(urllib.request.urlopen(URL).read().decode())"
    scrape = scrape.replace("URL", "'http://127.0.0.1:9090/metrics'")
    scraped = [
        stream(
            core.connect_get_namespaced_pod_exec,
            pod.metadata.name,
            namespace,
            command=["python3", "-c", scrape],
            stderr=True,
            stdout=True,
            stdin=False,
            tty=False,
        )
        for pod in pods
    ]
    # Both replicas watch the flows (and count them by phase); only the one holding the Lease
    # ran the flow's units.
    assert all('meta_flows{phase="Succeeded"} 1.0' in text for text in scraped), scraped
    ran = [text for text in scraped if 'meta_units_finished_total{outcome="succeeded"}' in text]
    assert len(ran) == 1, scraped


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
