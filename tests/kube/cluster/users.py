"""What the chart tests do as a user does: run the built `kubectl` and `helm` with nothing of
this process's environment but the cluster's address, and install the chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.kube.cluster.conftest import REPO, Cluster, RealNode

CHART = REPO / "charts" / "meta-orchestrator"
FRAMEWORK_IMAGE = "docker.io/library/meta-sample-tree-sum"
"""The framework image with a sample's files: it holds `meta`, which the operator and generated
steps run, and tree-sum's scripts."""


def run(tool: Path, *args: str, cluster: Cluster | None = None, timeout: float = 240) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tool.parent)}
    if cluster is not None:
        env["KUBECONFIG"] = str(cluster.kubeconfig)
    done = subprocess.run(
        [str(tool), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{tool.name} {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def install(tools: Path, cluster: Cluster, release: str, namespace: str, *values: str) -> None:
    """`helm install --wait` of the chart into `namespace`, with these `--set` values."""
    run(
        tools / "helm", "install", release, str(CHART), "--namespace", namespace, "--wait",
        "--timeout", "240s", *(arg for value in values for arg in ("--set", value)),
        cluster=cluster,
    )  # fmt: skip


def on_the_real_node(real_node: RealNode, namespace: str) -> tuple[str, ...]:
    """Values that run the operator from the framework image on the real node, watching
    `namespace`, its flows' pods there too, with the node's store."""
    ((key, value),) = real_node.selector.items()
    return (
        f"image.repository={FRAMEWORK_IMAGE}", "image.tag=0.1.0",
        f"watchNamespaces={{{namespace}}}",
        f"store.claim={real_node.claim}", f"store.operatorClaim={real_node.claim}",
        f"nodeSelector.{key}={value}", f"pods.nodeSelector.{key}={value}",
    )  # fmt: skip
