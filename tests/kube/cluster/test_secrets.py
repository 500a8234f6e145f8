"""A step reads a secretRef from a real Secret on the real node: a macro step's container and a
micro pod's slot get it from the kubelet, and the value is in nothing meta writes (the
MetaFlow, its status and events, the pods' specs, the operator's log)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from kubernetes import client

from tests.kube.cluster.conftest import Cluster, RealNode
from tests.kube.cluster.operating import wait_phase
from tests.kube.cluster.test_node import FRAMEWORK_IMAGE, TIMEOUT, meta_apply, operating

SECRET = "cluster-s3cret-4f1d"
# The step writes a digest of what it got, and whether it saw any slot's secret variable.
CHECK = (
    "import hashlib, os\n"
    "token = os.environ['TOKEN']\n"
    "held = [k for k in os.environ if k.startswith('META_SECRET_')]\n"
    "out = os.environ['META_OUTPUT']\n"
    "open(os.path.join(out, 'digest'), 'w').write(hashlib.sha256(token.encode()).hexdigest())\n"
    "open(os.path.join(out, 'held'), 'w').write(','.join(held))\n"
)


def step(name: str) -> dict[str, object]:
    env = {"TOKEN": {"secretRef": {"name": "api-creds", "key": "token"}}}
    return {"name": name, "run": {"command": ["python3", "-c", CHECK], "env": env}}


def test_a_step_reads_a_secret_ref_from_a_real_secret(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "api-creds"}, "stringData": {"token": SECRET}},
    )
    flow = {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "secret-reader"},
        "spec": {
            "root": {
                "name": "top",
                "scope": "macro",
                "pattern": "dag",
                "units": [
                    step("direct"),
                    {
                        "name": "inner",
                        "scope": "micro",
                        "pattern": "sequence",
                        "units": [step("slotted")],
                    },
                ],
            }
        },
    }
    flow_file = tmp_path / "secret-reader.flow.yaml"
    flow_file.write_text(yaml.safe_dump(flow))
    log = tmp_path / "operator.log"
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, log):
        name = meta_apply(cluster, namespace, flow_file)
        found = wait_phase(cluster, namespace, name, ("Succeeded", "Failed"), TIMEOUT)
    status = found["status"]
    assert status["phase"] == "Succeeded", (status.get("failedUnit"), status.get("reason"))
    digests = sorted((real_node.store / found["metadata"]["uid"]).rglob("digest"))
    assert len(digests) == 2, digests
    expected = hashlib.sha256(SECRET.encode()).hexdigest()
    assert [d.read_text() for d in digests] == [expected, expected]
    assert [d.with_name("held").read_text() for d in digests] == ["", ""]

    pods = core.list_namespaced_pod(namespace).items
    events = core.list_namespaced_event(namespace).items
    written = json.dumps(
        [
            found,
            [cluster.api_client.sanitize_for_serialization(p) for p in pods],
            [cluster.api_client.sanitize_for_serialization(e) for e in events],
        ]
    )
    assert pods, "the pods are kept, so their specs are checked too"
    assert SECRET not in written
    assert SECRET not in log.read_text(errors="replace")
