"""What one status write of a MetaFlow costs the API server and etcd, by the object's size.

Starts the plane of tests/e2e/cluster (kwok node only), installs the CRD and, with no operator
running, creates MetaFlows whose spec holds a dfs tree of `--sizes` nodes inline (the shape of
bench_scale_kube.py's `--inline-tree`; 0: the tree as a file, a small object), and patches each
one's status `--patches` times, one after another, as the operator's status writer does. Prints
the object's size, the wall time of a patch, and the CPU time (user + system, from /proc) that
kube-apiserver and etcd spent over the patches, per patch.

Why: the operator writes a flow's status about once a second while it runs; each write makes
the API server decode, patch, check and re-encode the whole object and etcd store it again, so
the cost of a status write grows with the spec. The operator spaces its writes by the object's
size (meta/kube/controller/status.py, PACE_BYTES); this shows the cost that spacing bounds. Not
a test: it prints.

    python benchmarks/bench_status_cost.py [--sizes 0,10000,30000,100000] [--patches 20]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench_scale_kube import GROUP, PLURAL, VERSION, flow_body
from cluster import ensure_crd, start_plane, stop_plane
from kubernetes import client, config

NAMESPACE = "status-cost"


def cpu_seconds(state: Path, name: str) -> float:
    """User + system seconds of the plane's process `name` so far."""
    pids = dict(line.split() for line in (state / "pids").read_text().splitlines())
    fields = Path(f"/proc/{pids[name]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(api: client.ApiClient, state: Path, nodes: int, patches: int, data: Path) -> None:
    custom = client.CustomObjectsApi(api)
    name = f"tree-{nodes}"
    body = flow_body(name, "dfs", max(nodes, 1), 500, data_dir=None if nodes else data)
    size = len(json.dumps(body, separators=(",", ":")))
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
    server, store = cpu_seconds(state, "kube-apiserver"), cpu_seconds(state, "etcd")
    began = time.monotonic()
    for n in range(patches):
        status = {"status": {"phase": "Running", "active": n, "progress": f"{n}/{patches}"}}
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, name, status
        )
    took = (time.monotonic() - began) / patches
    server = (cpu_seconds(state, "kube-apiserver") - server) / patches
    store = (cpu_seconds(state, "etcd") - store) / patches
    custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    shape = f"tree of {nodes} nodes inline" if nodes else "tree as a file"
    print(
        f"{shape:28} object {size:>9} B: a status patch {took * 1000:7.0f} ms, "
        f"kube-apiserver CPU {server * 1000:6.0f} ms, etcd CPU {store * 1000:5.0f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0,10000,30000,100000", help="tree nodes; 0: a file")
    parser.add_argument("--patches", type=int, default=20)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="meta-bench-status-"))
    kubeconfig = start_plane(state)
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        ensure_crd(api)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        for nodes in (int(s) for s in args.sizes.split(",")):
            measure(api, state, nodes, args.patches, state)
    finally:
        stop_plane(state)


if __name__ == "__main__":
    main()
