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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster import ensure_crd, start_plane, stop_plane
from kubernetes import client, config

META = Path(sys.executable).with_name("meta")
GROUP, VERSION, PLURAL = "meta-orchestrator.io", "v1alpha1", "metaflows"
WAIT_SECONDS = 600


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
        ensure_crd(api)
        namespace = "bench"
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        operator = subprocess.Popen(
            [str(META), "operator", "-n", namespace, "--kubeconfig", str(kubeconfig),
             "--node-selector", "type=kwok", "--toleration", "kwok.x-k8s.io/node:NoSchedule",
             "--metrics-port", "0"],
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
        stop_plane(state)


if __name__ == "__main__":
    main()
