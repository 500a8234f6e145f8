"""Step-to-step handoff on the real node: micro slots in one pod against one pod per step.

Runs the same sequence of N short steps twice through `meta operator` on the real node of
tests/e2e/cluster (kubelet and containerd): once as a micro section (one pod; each step runs in a
slot container the quarterback hands it to) and once as a macro section (one pod per step, data
through the store volume). Each step notes when it started and ended (the first thing and the last
thing its Python process does) and passes the list on to the next step, so the handoff of step i
to step i+1 is `start[i+1] - end[i]`: the engine, the API, the kubelet, container start and
Python's own start-up, all in. Prints p50 and p95 of both and their ratio (our goal: micro at
least 10x faster). Not a test: it prints.

    python benchmarks/bench_node.py [--steps 20] [--kubeconfig .cluster/kubeconfig]

Without --kubeconfig it builds what it needs and starts a plane with a real node of its own
(tests/e2e/cluster/up.sh, root needed), and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster import ensure_crd, start_plane, stop_plane
from kubernetes import client, config
from kubernetes.client.rest import ApiException

META = Path(sys.executable).with_name("meta")
GROUP, VERSION, PLURAL = "meta-orchestrator.io", "v1alpha1", "metaflows"
NODE = "meta-node-0"
WAIT_SECONDS = 600

STEP = """
import time
started = time.time()
import json, os
from pathlib import Path
times = []
for previous in sorted(Path(os.environ["META_UPSTREAM"]).iterdir()):
    times = json.loads((previous / "times.json").read_text())
times.append([started, 0.0])
times[-1][1] = time.time()
Path(os.environ["META_OUTPUT"], "times.json").write_text(json.dumps(times))
"""


def store(api: client.ApiClient, namespace: str, folder: Path) -> str:
    """A hostPath PersistentVolume and its claim: the store of the macro pods."""
    core = client.CoreV1Api(api)
    folder.mkdir(parents=True, exist_ok=True)
    # Pods run as uid 10001; the kubelet gives the outputs folders it makes this folder's mode.
    folder.chmod(0o777)
    volume = f"store-{namespace}"
    core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "hostPath": {"path": str(folder), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": "store"},
            },
        }
    )
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "store"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    while core.read_namespaced_persistent_volume_claim("store", namespace).status.phase != "Bound":
        time.sleep(0.2)
    return volume


def flow(name: str, scope: str, steps: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetaFlow",
        "metadata": {"name": name},
        "spec": {
            "root": {
                "name": "chain",
                "scope": scope,
                "pattern": "sequence",
                "units": [
                    {"name": f"step-{i:02d}", "run": {"command": ["python3", "-c", STEP]}}
                    for i in range(steps)
                ],
            }
        },
    }


def run(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> list[float]:
    """Run one flow to its end; the handoffs between its steps, in seconds."""
    name = body["metadata"]["name"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        status = found.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "Invalid"):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"{name} did not end within {WAIT_SECONDS} s")
    if status["phase"] != "Succeeded":
        raise SystemExit(f"{name}: {status}")
    times = json.loads((Path(status["outputs"]) / "times.json").read_text())
    return [times[i + 1][0] - times[i][1] for i in range(len(times) - 1)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--kubeconfig", type=Path)
    args = parser.parse_args()
    state = None
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        state = Path(tempfile.mkdtemp(prefix="meta-bench-node-"))
        started = time.monotonic()
        kubeconfig = start_plane(state, real_node=True)
        print(f"plane and real node up in {time.monotonic() - started:.1f} s")
    plane = kubeconfig.resolve().parent
    api = config.new_client_from_config(config_file=str(kubeconfig))
    namespace = f"bench-node-{os.getpid()}"
    core = client.CoreV1Api(api)
    operator = None
    volume = None
    try:
        ensure_crd(api)
        core.create_namespace({"metadata": {"name": namespace}})
        folder = plane / "store" / namespace
        volume = store(api, namespace, folder)
        operator = subprocess.Popen(
            [str(META), "operator", "-n", namespace, "--kubeconfig", str(kubeconfig),
             "--node-selector", f"kubernetes.io/hostname={NODE}",
             "--image", "meta-orchestrator:0.1.0",
             "--store-claim", "store", "--store-dir", str(folder), "--metrics-port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        custom = client.CustomObjectsApi(api)
        results = {}
        for scope in ("micro", "macro"):
            began = time.monotonic()
            handoffs = run(custom, namespace, flow(f"handoff-{scope}", scope, args.steps))
            results[scope] = handoffs
            p50, p95 = percentile(handoffs, 0.5), percentile(handoffs, 0.95)
            print(
                f"{scope}: {args.steps} steps in {time.monotonic() - began:.1f} s; "
                f"handoff p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
                f"mean {statistics.mean(handoffs) * 1000:.0f} ms"
            )
        for share, label in ((0.5, "p50"), (0.95, "p95")):
            ratio = percentile(results["macro"], share) / percentile(results["micro"], share)
            print(f"{label}: micro is {ratio:.1f}x faster than a pod per step (goal >= 10x)")
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait()
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace)
            if volume is not None:
                core.delete_persistent_volume(volume)
        if state is not None:
            stop_plane(state)


if __name__ == "__main__":
    main()
