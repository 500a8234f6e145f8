"""The operator against the real local control plane: API writes per unit, time, status size.

Starts the plane of tests/e2e/cluster (building it first if needed), installs the CRD, runs
`meta operator` as a process, applies fan-outs of N kwok pods (each runs ~1 s on the fake node),
and prints the writes the operator made per unit (pods, journal, status, events; our aim is at
most 3 on average), the wall time, and the size of the final status. Not a test: it prints.

    python benchmarks/bench_kube.py [--units 200] [--max-active 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests" / "e2e" / "cluster"
META = Path(sys.executable).with_name("meta")
GROUP, VERSION, PLURAL = "meta-orchestrator.io", "v1alpha1", "metaflows"
WAIT_SECONDS = 600


def start_plane(state: Path) -> Path:
    built = subprocess.run([str(CLUSTER / "build.sh")], capture_output=True, text=True, check=True)
    env = {**os.environ, "META_CLUSTER_BIN": built.stdout.strip().splitlines()[-1]}
    subprocess.run([str(CLUSTER / "up.sh"), str(state)], env=env, check=True, capture_output=True)
    return state / "kubeconfig"


def install_crd(api: client.ApiClient) -> None:
    body = yaml.safe_load((REPO / "crds" / "metaflow.yaml").read_text())
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(body)
    while True:
        found = extensions.read_custom_resource_definition(body["metadata"]["name"])
        if any(
            c.type == "Established" and c.status == "True" for c in found.status.conditions or []
        ):
            return
        time.sleep(0.1)


def fanout(name: str, units: int, max_active: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetaFlow",
        "metadata": {"name": name},
        "spec": {
            "inputs": {"items": {"value": list(range(units))}},
            "root": {
                "name": "each",
                "scope": "macro",
                "pattern": "fanout",
                "maxActive": max_active,
                "over": {"input": "items"},
                "visit": {
                    "name": "item-{{ item }}",
                    "run": {"image": "busybox", "command": ["true"]},
                },
            },
        },
    }


def wait_ended(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        if (found.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Invalid"):
            return found
        time.sleep(0.2)
    raise SystemExit(f"{name} did not end within {WAIT_SECONDS} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--max-active", type=int, default=20)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="meta-bench-kube-"))
    started = time.monotonic()
    kubeconfig = start_plane(state)
    print(f"plane up in {time.monotonic() - started:.1f} s")
    operator = None
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        install_crd(api)
        namespace = "bench"
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        operator = subprocess.Popen(
            [str(META), "operator", "-n", namespace, "--kubeconfig", str(kubeconfig),
             "--node-name", "kwok-node-0", "--toleration", "kwok.x-k8s.io/node:NoSchedule"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        custom = client.CustomObjectsApi(api)
        body = fanout("bench", args.units, args.max_active)
        began = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        found = wait_ended(custom, namespace, "bench")
        took = time.monotonic() - began
        status = found["status"]
        writes = status.get("apiWrites", 0)
        pods = len(client.CoreV1Api(api).list_namespaced_pod(namespace).items)
        print(f"flow: {status['phase']}, {status['progress']} units, {pods} pods")
        print(f"wall time: {took:.1f} s for {args.units} units at maxActive {args.max_active}")
        print(f"peak active: {status['sections'][0]['peakActive']} (bound {args.max_active})")
        print(
            f"API writes by the operator: {writes} = {writes / args.units:.2f} per unit (aim <= 3)"
        )
        print(f"status size: {len(json.dumps(status))} bytes")
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait()
        subprocess.run([str(CLUSTER / "down.sh"), str(state)], check=False, capture_output=True)


if __name__ == "__main__":
    main()
