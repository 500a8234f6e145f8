"""Real pods on the real node (kubelet and containerd): steps run real commands, macro pods hand
data over through a real volume, and micro pods run their steps in slot containers driven by the
quarterback with its own token.

The images are the ones tests/e2e/images/build.sh makes and up.sh loads into the node's
containerd: the framework image, and one image per sample with the sample's files in /sample
(its working directory), so a sample's steps (`python3 sum.py`) run as they do locally.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.stream import stream

from tests.kube.cluster.conftest import RESTRICTED_CONTAINER, RESTRICTED_POD, Cluster, RealNode
from tests.kube.cluster.operating import (
    META,
    Operator,
    apply,
    journal_records,
    wait_phase,
    watching_pods,
)

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples"
FRAMEWORK_IMAGE = "meta-orchestrator:0.1.0"
TIMEOUT = 300


def sample_image(sample: str) -> str:
    return f"meta-sample-{sample}:0.1.0"


@contextlib.contextmanager
def operating(
    cluster: Cluster, namespace: str, node: RealNode, image: str, log: Path
) -> Iterator[Operator]:
    """A `meta operator` whose pods run on the real node, with `image` for steps naming none."""
    placement = (
        *(f"--node-selector={k}={v}" for k, v in node.selector.items()),
        "--image", image,
        "--image-pull-policy", "IfNotPresent",
        "--store-claim", node.claim,
        "--store-dir", str(node.store),
    )  # fmt: skip
    with Operator(cluster, namespace, log, placement=placement).running() as running:
        yield running


def meta_apply(cluster: Cluster, namespace: str, flow_file: Path) -> str:
    """`meta apply` the flow file; the MetaFlow's name."""
    subprocess.run(
        [str(META), "apply", str(flow_file), "-n", namespace], env=cluster.env(), check=True
    )
    return str(yaml.safe_load(flow_file.read_text())["metadata"]["name"])


def run_locally(flow_file: Path, workdir: Path) -> dict[str, Any]:
    subprocess.run(
        [str(META), "run", str(flow_file), "--workdir", str(workdir)],
        check=True,
        capture_output=True,
    )
    report: dict[str, Any] = json.loads((workdir / "report.json").read_text())
    return report


def same_tree(left: Path, right: Path) -> list[str]:
    """The relative paths that differ between two folders (missing, extra, or other bytes)."""
    differing: list[str] = []

    def walk(compared: filecmp.dircmp[str], prefix: str) -> None:
        differing.extend(prefix + n for n in compared.left_only + compared.right_only)
        differing.extend(prefix + n for n in compared.funny_files)
        _, mismatch, errors = filecmp.cmpfiles(
            compared.left, compared.right, compared.common_files, shallow=False
        )
        differing.extend(prefix + n for n in mismatch + errors)
        for name, sub in compared.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right), "")
    return differing


def persisted(node: RealNode, flow: dict[str, Any], unit_id: str) -> Path:
    """Where the cluster run keeps a unit's outputs in the store."""
    return node.store / flow["metadata"]["uid"] / unit_id / "outputs"


def run_sample_in_cluster(
    cluster: Cluster, namespace: str, node: RealNode, flow_file: Path, image: str, log: Path
) -> dict[str, Any]:
    with operating(cluster, namespace, node, image, log):
        name = meta_apply(cluster, namespace, flow_file)
        return wait_phase(cluster, namespace, name, ("Succeeded", "Failed"), TIMEOUT)


@pytest.mark.parametrize(
    "sample",
    [
        "org-bfs",
        "dag-fanout",
        "company-cases",
        "stream-cycle",
        "macro-of-micro",
        "bootstrap",
        "release-gate",
    ],
)
def test_a_sample_gives_the_local_runtimes_outputs_byte_for_byte(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path, sample: str
) -> None:
    flow_file = SAMPLES / sample / f"{sample}.flow.yaml"
    local = run_locally(flow_file, tmp_path / "local")
    found = run_sample_in_cluster(
        cluster, namespace, real_node, flow_file, sample_image(sample), tmp_path / "operator.log"
    )
    status = found["status"]
    assert status["phase"] == "Succeeded", (status.get("failedUnit"), status.get("reason"), status)
    compared = 0
    for unit in local["units"]:
        if unit["scope"] != "macro" or unit["state"] != "succeeded":
            continue
        ours = Path(unit["outputs"])
        theirs = persisted(real_node, found, unit["id"])
        assert theirs.is_dir(), f"{unit['id']}: no outputs in the store ({theirs})"
        assert same_tree(ours, theirs) == [], unit["id"]
        compared += 1
    assert compared >= 1
    root = Path(local["outputs"])
    assert same_tree(root, Path(found["status"]["outputs"])) == []


def test_step_results_decide_conditions_and_feed_a_micro_fanout_as_they_do_locally(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    """samples/release-gate in pods: a macro step pod writes $META_RESULT (into the store), a
    later unit's `when` reads it (docs is skipped), a micro pod's quarterback fans out over it
    and keeps its section's result, and release's `when` reads that."""
    flow_file = SAMPLES / "release-gate" / "release-gate.flow.yaml"
    local = run_locally(flow_file, tmp_path / "local")
    found = run_sample_in_cluster(
        cluster, namespace, real_node, flow_file, sample_image("release-gate"),
        tmp_path / "operator.log",
    )  # fmt: skip
    status = found["status"]
    assert status["phase"] == "Succeeded", (status.get("failedUnit"), status.get("reason"))
    assert (status["skipped"], status["result"]) == (1, {"version": "1.2.0"})
    assert status["result"] == local["result"]
    assert same_tree(Path(local["outputs"]), Path(status["outputs"])) == []
    uid = found["metadata"]["uid"]
    detect = real_node.store / uid / "release-gate/gate/detect/result/1/result.json"
    assert json.loads(detect.read_text()) == {
        "packages": ["api", "web"],
        "docs": False,
        "lines": 55,
    }
    tests = real_node.store / uid / "release-gate/gate/test/result/1/result.json"
    assert json.loads(tests.read_text()) == {
        "test-api": {"package": "api", "passed": 9, "failed": 0},
        "test-web": {"package": "web", "passed": 9, "failed": 0},
    }
    records = {
        record["id"]: record
        for record in journal_records(cluster, namespace, found, real_node.store)
    }
    assert records["release-gate/gate/docs"]["state"] == "skipped"
    assert records["release-gate/gate/release"]["result"] == {"version": "1.2.0"}
    assert records["release-gate/gate/test"]["result"] == json.loads(tests.read_text())


def test_the_same_flow_in_macro_and_in_micro_scope_gives_the_same_outputs(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    source = SAMPLES / "tree-sum"
    flow = yaml.safe_load((source / "tree-sum.flow.yaml").read_text())
    results: dict[str, Path] = {}
    for scope in ("micro", "macro"):
        folder = tmp_path / scope
        shutil.copytree(source, folder)
        flow["metadata"]["name"] = f"tree-sum-{scope}"
        flow["spec"]["root"]["scope"] = scope
        (folder / "tree-sum.flow.yaml").write_text(yaml.safe_dump(flow))
        found = run_sample_in_cluster(
            cluster, namespace, real_node, folder / "tree-sum.flow.yaml",
            sample_image("tree-sum"), tmp_path / f"{scope}.log",
        )  # fmt: skip
        status = found["status"]
        assert status["phase"] == "Succeeded", (status.get("failedUnit"), status.get("reason"))
        section = status["sections"][0]
        assert (section["scope"], section["unitsRun"]) == (scope, 9)
        results[scope] = Path(found["status"]["outputs"])
    local = run_locally(SAMPLES / "tree-sum" / "tree-sum.flow.yaml", tmp_path / "local")
    assert (results["micro"] / "sum.txt").read_text() == "42\n"
    assert same_tree(results["micro"], results["macro"]) == []
    assert same_tree(Path(local["outputs"]), results["micro"]) == []


SHARE_SERVER = """
import json, os, socket
from pathlib import Path
ns = {k: os.readlink(f"/proc/self/ns/{k}") for k in ("net", "ipc", "uts")}
Path("/dev/shm/meta-ipc").write_text("written by server")
Path(os.environ["META_SCRATCH"], "server.txt").write_text("server was here")
with socket.create_server(("127.0.0.1", 47011)) as server:
    server.settimeout(60)
    conn, _ = server.accept()
    with conn:
        said = conn.recv(100).decode()
        conn.sendall(b"hello client")
out = Path(os.environ["META_OUTPUT"])
out.joinpath("ns.json").write_text(json.dumps(ns))
out.joinpath("heard.txt").write_text(said)
"""

SHARE_CLIENT = """
import json, os, socket, time
from pathlib import Path
ns = {k: os.readlink(f"/proc/self/ns/{k}") for k in ("net", "ipc", "uts")}
for _ in range(600):
    try:
        conn = socket.create_connection(("127.0.0.1", 47011), timeout=5)
        break
    except OSError:
        time.sleep(0.1)
with conn:
    conn.sendall(b"hello server")
    answer = conn.recv(100).decode()
out = Path(os.environ["META_OUTPUT"])
out.joinpath("ns.json").write_text(json.dumps(ns))
out.joinpath("heard.txt").write_text(answer)
out.joinpath("ipc.txt").write_text(Path("/dev/shm/meta-ipc").read_text())
"""

SHARE_JOIN = """
import json, os
from pathlib import Path
up = Path(os.environ["META_UPSTREAM"])
summary = {
    name: {
        "ns": json.loads((up / name / "ns.json").read_text()),
        "heard": (up / name / "heard.txt").read_text(),
    }
    for name in ("server", "client")
}
summary["ipc"] = (up / "client" / "ipc.txt").read_text()
summary["scratch"] = Path(os.environ["META_SCRATCH"], "server.txt").read_text()
Path(os.environ["META_OUTPUT"], "summary.json").write_text(json.dumps(summary))
"""


def python_step(name: str, code: str, **extra: Any) -> dict[str, Any]:
    """A step running `code`; `cpu=` and `memory=` become its requests, the rest unit fields."""
    requests = {k: extra.pop(k) for k in ("cpu", "memory") if k in extra}
    run: dict[str, Any] = {"command": ["python3", "-c", code]}
    if requests:
        run["resources"] = {"requests": requests}
    return {"name": name, "run": run, **extra}


def test_micro_steps_share_scratch_localhost_and_ipc(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    flow = {
        "metadata": {"name": "sharing"},
        "spec": {
            "defaults": {"timeoutSeconds": 120},
            "root": {
                "name": "pod",
                "scope": "micro",
                "pattern": "dag",
                "maxActive": 2,
                "units": [
                    python_step("server", SHARE_SERVER, cpu="100m", memory="32Mi"),
                    python_step("client", SHARE_CLIENT, cpu="200m", memory="16Mi"),
                    python_step("join", SHARE_JOIN, dependsOn=["server", "client"]),
                ],
            },
        },
    }
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"):
        apply(cluster, namespace, flow)
        found = wait_phase(cluster, namespace, "sharing", ("Succeeded", "Failed"), TIMEOUT)
    assert found["status"]["phase"] == "Succeeded", found["status"]
    summary = json.loads((Path(found["status"]["outputs"]) / "summary.json").read_text())
    assert summary["server"]["heard"] == "hello server"
    assert summary["client"]["heard"] == "hello client"
    assert summary["ipc"] == "written by server"
    assert summary["scratch"] == "server was here"
    assert summary["server"]["ns"] == summary["client"]["ns"], "one net, IPC and UTS namespace"
    pod = client.CoreV1Api(cluster.api_client).list_namespaced_pod(namespace).items[0]
    slots = [c for c in pod.spec.containers if c.name.startswith("slot-")]
    assert len(slots) == 2, "two steps at once: two slots"
    asked = [c.resources.requests for c in slots]
    assert asked == [{"cpu": "200m", "memory": "32Mi"}] * 2, "each slot the most any step asks"
    assert pod.status.phase == "Succeeded", "and the kubelet admitted and ran the pod"


@dataclass
class SlotHistory:
    """What a watch saw of one micro pod: its uids, IPs, and each slot's (imageID, restarts)."""

    uids: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    slots: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


@contextlib.contextmanager
def slot_history(cluster: Cluster, namespace: str) -> Iterator[SlotHistory]:
    seen = SlotHistory()

    def record(event: dict[str, Any]) -> None:
        pod = event["object"]
        seen.uids.add(pod.metadata.uid)
        if pod.status.pod_ip:
            seen.ips.add(pod.status.pod_ip)
        for status in pod.status.container_statuses or []:
            if not status.name.startswith("slot-") or not status.image_id:
                continue
            states = seen.slots.setdefault(status.name, [])
            now = (status.image_id, status.restart_count)
            if not states or states[-1] != now:
                states.append(now)

    with watching_pods(cluster, namespace, record):
        yield seen


SWAP_STEP = """
import json, os
from pathlib import Path
log = Path(os.environ["META_SCRATCH"], "log.jsonl")
with log.open("a") as out:
    out.write(json.dumps({
        "unit": os.environ["META_UNIT_ID"],
        "sample_image": Path("/sample").is_dir(),
        "net": os.readlink("/proc/self/ns/net"),
    }) + "\\n")
Path(os.environ["META_OUTPUT"], "log.jsonl").write_text(log.read_text())
"""


def test_an_image_swap_restarts_the_slot_in_place_keeping_pod_ip_and_scratch(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    other = sample_image("tree-sum")
    flow = {
        "metadata": {"name": "swapping"},
        "spec": {
            "defaults": {"timeoutSeconds": 120},
            "root": {
                "name": "pod",
                "scope": "micro",
                "pattern": "sequence",
                "maxActive": 1,
                "units": [
                    python_step("first", SWAP_STEP),
                    {
                        "name": "second",
                        "run": {"image": other, "command": ["python3", "-c", SWAP_STEP]},
                    },
                    python_step("third", SWAP_STEP),
                ],
            },
        },
    }
    with (
        slot_history(cluster, namespace) as history,
        operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"),
    ):
        apply(cluster, namespace, flow)
        found = wait_phase(cluster, namespace, "swapping", ("Succeeded", "Failed"), TIMEOUT)
    assert found["status"]["phase"] == "Succeeded", found["status"]
    lines = (Path(found["status"]["outputs"]) / "log.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines]
    assert [s["unit"] for s in steps] == [f"swapping/pod/{n}" for n in ("first", "second", "third")]
    assert [s["sample_image"] for s in steps] == [False, True, False], "each step had its image"
    assert len({s["net"] for s in steps}) == 1, "one network namespace throughout"
    assert len(history.uids) == 1 and len(history.ips) == 1, (history.uids, history.ips)
    states = history.slots["slot-0"]
    images = [image for image, _ in states]
    assert len(set(images)) == 2 and images[0] != images[1], states
    assert states[-1][1] >= 2, f"two swaps, two restarts: {states}"


GATE = """
import os, time
from pathlib import Path
gate = Path(os.environ["META_SCRATCH"], "go")
deadline = time.monotonic() + 120
while not gate.exists():
    assert time.monotonic() < deadline, "nobody opened the gate"
    time.sleep(0.1)
"""

PROBE = """
import json, ssl, urllib.request
from pathlib import Path
secrets = Path("/var/run/secrets/kubernetes.io/serviceaccount")
token = (secrets / "token").read_text()
context = ssl.create_default_context(cafile=str(secrets / "ca.crt"))
namespace = (secrets / "namespace").read_text()
import os
host = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"

def call(method, path, body=None):
    request = urllib.request.Request(
        host + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}",
                 "Content-Type": "application/strategic-merge-patch+json"})
    try:
        return urllib.request.urlopen(request, context=context).status
    except urllib.error.HTTPError as error:
        return error.code

label = {"metadata": {"labels": {"probed": "yes"}}}
pods = f"/api/v1/namespaces/{namespace}/pods"
print(json.dumps({
    "own": call("PATCH", f"{pods}/{os.environ['META_POD_NAME']}", label),
    "other": call("PATCH", f"{pods}/bystander", label),
    "read_own": call("GET", f"{pods}/{os.environ['META_POD_NAME']}"),
    "list": call("GET", pods),
    "secrets": call("GET", f"/api/v1/namespaces/{namespace}/secrets"),
}))
Path("/scratch/go").touch()
"""


def test_the_quarterback_in_its_pod_may_patch_that_pod_and_nothing_else(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    core = client.CoreV1Api(cluster.api_client)
    bystander = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bystander"},
        "spec": {
            "nodeSelector": cluster.selector,
            "tolerations": [cluster.toleration],
            "securityContext": RESTRICTED_POD,
            "containers": [
                {
                    "name": "c",
                    "image": "kwok.meta-orchestrator.io/slow",
                    "securityContext": RESTRICTED_CONTAINER,
                }
            ],
        },
    }
    core.create_namespaced_pod(namespace, bystander)
    flow = {
        "metadata": {"name": "gated"},
        "spec": {
            "root": {
                "name": "pod",
                "scope": "micro",
                "pattern": "sequence",
                "units": [python_step("wait", GATE)],
            }
        },
    }
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"):
        apply(cluster, namespace, flow)
        pod = running_micro_pod(core, namespace)
        answer = stream(
            core.connect_get_namespaced_pod_exec, pod, namespace, container="quarterback",
            command=["python3", "-c", PROBE], stderr=True, stdout=True, stdin=False, tty=False,
        )  # fmt: skip
        found = wait_phase(cluster, namespace, "gated", ("Succeeded", "Failed"), TIMEOUT)
    assert found["status"]["phase"] == "Succeeded", found["status"]
    assert json.loads(answer.strip().splitlines()[-1]) == {
        "own": 200,
        "other": 403,
        "read_own": 403,
        "list": 403,
        "secrets": 403,
    }
    assert core.read_namespaced_pod(pod, namespace).metadata.labels["probed"] == "yes"
    assert "probed" not in (core.read_namespaced_pod("bystander", namespace).metadata.labels or {})


def running_micro_pod(core: client.CoreV1Api, namespace: str) -> str:
    """The name of the namespace's micro pod, once its quarterback runs."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for pod in core.list_namespaced_pod(
            namespace, label_selector="meta-orchestrator.io/scope=micro"
        ).items:
            for status in pod.status.container_statuses or []:
                if status.name == "quarterback" and status.state.running:
                    return str(pod.metadata.name)
        time.sleep(0.2)
    raise AssertionError("no micro pod with a running quarterback")


WRITE_SCRATCH = """
import os
from pathlib import Path
Path(os.environ["META_SCRATCH"], "mark.txt").write_text(os.environ["META_UNIT_ID"])
"""
# Exits with argv-free codes that say what it saw: 0 (or 42 in the failing pod, so that its
# reason shows it ran) when the unit before it left its mark in the pod's scratch, else 43.
CHECK_SCRATCH = """
import os, sys
from pathlib import Path
mark = Path(os.environ["META_SCRATCH"], "mark.txt")
seen = mark.exists() and mark.read_text().endswith("/write")
sys.exit(int(os.environ["WHEN_SEEN"]) if seen else 43)
"""


def test_finally_of_a_micro_section_runs_in_its_pod_whatever_happened(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    def pod(name: str, *units: dict[str, Any], when_seen: str) -> dict[str, Any]:
        check = python_step("check", CHECK_SCRATCH)
        check["run"]["env"] = {"WHEN_SEEN": when_seen}
        return {
            "name": name,
            "scope": "micro",
            "pattern": "sequence",
            "units": [python_step("write", WRITE_SCRATCH), *units],
            "finally": [check],
        }

    flow = {
        "metadata": {"name": "pod-finally"},
        "spec": {
            "defaults": {"timeoutSeconds": 120},
            "root": {
                "name": "both",
                "scope": "macro",
                "pattern": "dag",
                "onFailure": "continue",
                "units": [
                    pod("good", when_seen="0"),
                    pod("bad", python_step("boom", "raise SystemExit(3)"), when_seen="42"),
                ],
            },
        },
    }
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"):
        apply(cluster, namespace, flow)
        found = wait_phase(cluster, namespace, "pod-finally", ("Succeeded", "Failed"), TIMEOUT)
    status = found["status"]
    assert status["phase"] == "Failed", status
    # The good pod succeeded: its finally unit ran in it and read its scratch.
    assert status["failedUnits"] == ["pod-finally/both/bad"], status
    assert status["succeeded"] == 1, status
    # The bad pod's quarterback names both failures: the step, then its finally unit, which
    # ran after it in the same pod and saw the scratch (exit 42).
    assert "pod-finally/both/bad/boom exited with code 3" in status["reason"]
    assert "pod-finally/both/bad/finally/check exited with code 42" in status["reason"]
    pods = client.CoreV1Api(cluster.api_client).list_namespaced_pod(namespace).items
    assert len(pods) == 2, "each micro section, its finally unit included, is one pod"


def test_a_micro_pod_a_siblings_failure_stops_runs_its_finally_units_before_it_goes(
    cluster: Cluster, namespace: str, real_node: RealNode, crd: None, tmp_path: Path
) -> None:
    """`onFailure: stop` deletes the running micro pod; its quarterback (SIGTERM) stops the
    running step and runs the section's finally unit in its slot, whose log says so."""
    flow = {
        "metadata": {"name": "pod-stopped"},
        "spec": {
            "defaults": {"timeoutSeconds": 120},
            "root": {
                "name": "both",
                "scope": "macro",
                "pattern": "dag",
                "units": [
                    {
                        "name": "pod",
                        "scope": "micro",
                        "pattern": "sequence",
                        "units": [
                            python_step("write", WRITE_SCRATCH),
                            python_step("long", "import time; time.sleep(600)"),
                        ],
                        "finally": [python_step("check", FINALLY_SAYS)],
                    },
                    python_step("boom", "import time; time.sleep(20); raise SystemExit(3)"),
                ],
            },
        },
    }
    core = client.CoreV1Api(cluster.api_client)
    logged: list[str] = []
    with operating(cluster, namespace, real_node, FRAMEWORK_IMAGE, tmp_path / "operator.log"):
        apply(cluster, namespace, flow)
        pod = running_micro_pod(core, namespace)
        follower = threading.Thread(
            target=lambda: logged.append(follow_log(core, namespace, pod, "slot-0")), daemon=True
        )
        follower.start()
        found = wait_phase(cluster, namespace, "pod-stopped", ("Succeeded", "Failed"), TIMEOUT)
        follower.join(TIMEOUT)
    status = found["status"]
    assert status["phase"] == "Failed", status
    assert status["failedUnit"] == "pod-stopped/both/boom", status
    assert logged, "the slot's log was read to its end"
    assert "the finally unit saw pod-stopped/both/pod/write" in logged[0], logged[0][-2000:]


FINALLY_SAYS = """
import os
from pathlib import Path
print("the finally unit saw", Path(os.environ["META_SCRATCH"], "mark.txt").read_text())
"""


def follow_log(core: client.CoreV1Api, namespace: str, pod: str, container: str) -> str:
    """A container's log, followed until the container ends."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            answer = core.read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, _preload_content=False
            )
            return b"".join(answer.stream()).decode(errors="replace")
        except client.ApiException:
            time.sleep(0.5)  # the container has not started yet
    return ""
