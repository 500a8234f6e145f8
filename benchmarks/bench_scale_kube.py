"""The operator at scale on the kwok node: how time, memory, status, journal and etcd grow.

Starts the plane of tests/e2e/cluster (kwok node only), installs the CRD and, for each shape and
size asked, starts `meta operator` afresh as a host process (so its peak RSS is that flow's),
applies one MetaFlow of that many kwok pods (each runs ~1 s on the fake node) at maxActive 500
with an explicit QPS budget, waits for it to end and prints one line of figures:

- wall time from create to an ended status;
- the operator's peak RSS (VmHWM of /proc/PID/status);
- the status size (bytes of the MetaFlow's status as JSON; the CRD's aim is <= 64 KiB);
- the journal ConfigMaps (count and bytes of their data) when the flow ended or, with a store
  (`--compact-journal`), what the operator compacted into it and what is left in the cluster;
- etcd's database size (etcd_mvcc_db_total_size_in_bytes, and in use) before and after;
- API writes per unit: the operator's own count (status.apiWrites) and the API server's
  (apiserver_request_total, mutating verbs, every client: the scheduler and kwok too).

Shapes: `fanout` (one macro fan-out of N items) and `dfs` (a 10-ary tree of N nodes, walked
pre-order). The tree is a JSON file under the operator's `--data-dir`, as the docs tell a user
to give big data (`--inline-tree`: inline in the spec, which every status write then rewrites
in etcd and every watcher of MetaFlows decodes again). Not a test: it prints.

With `--in-process`, no plane: the operator's own flow runner (`run_flow`: engine, driver,
journal, status) in this process against the in-memory API of the unit tests, whose pods end at
once; it measures what the operator's code costs at sizes the 2-core plane cannot run in time
(this process's peak RSS includes the fake's copy of the journal ConfigMaps; its pods are
dropped once ended, as the API server keeps them, not the operator).

Each line ends with `pass` or `FAIL` against the targets of issue 17: the operator's peak RSS
<= 500 MB and the status <= 64 KiB.

    python benchmarks/bench_scale_kube.py [--sizes 1000,10000] [--shapes fanout,dfs]
        [--max-active 500] [--qps 200] [--burst 400] [--no-store] [--in-process]
        [--pod-gc OnPodCompletion] [--progress-every 60] [--inline-tree]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from cluster import ensure_crd, start_plane, stop_plane
from kubernetes import client, config

META = Path(sys.executable).with_name("meta")
GROUP, VERSION, PLURAL = "meta-orchestrator.io", "v1alpha1", "metaflows"
NAMESPACE = "bench"
MAX_RSS = 500 * 10**6
MAX_STATUS = 64 * 1024
MUTATING = ("POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION")
ENDED = ("Succeeded", "Failed", "Invalid")


def flow_body(
    name: str,
    shape: str,
    units: int,
    max_active: int,
    pod_gc: str = "",
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """The MetaFlow of one run. With a `data_dir`, the dfs tree is written there as a file and
    the flow names it (`--data-dir` of the operator), as the docs tell a user to give big data;
    without one it is inline in the spec."""
    visit = {"name": "u-{{ item }}", "run": {"image": "busybox", "command": ["true"]}}
    if shape == "fanout":
        inputs = {"items": {"value": list(range(units))}}
        root = {"over": {"input": "items"}, "pattern": "fanout", "visit": visit}
    else:
        if data_dir is None:
            inputs = {"tree": {"value": tree(units)}}
        else:
            (data_dir / f"{name}.tree.json").write_text(json.dumps(tree(units)))
            inputs = {"tree": {"path": f"{name}.tree.json"}}
        visit = {**visit, "name": "t-{{ node.i }}"}
        root = {"over": {"input": "tree", "children": "c"}, "pattern": "dfs", "order": "pre",
                "visit": visit}  # fmt: skip
    spec = {
        "inputs": inputs,
        "root": {"name": "walk", "scope": "macro", "maxActive": max_active, **root},
    }
    if pod_gc:
        spec["podGC"] = {"strategy": pod_gc}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MetaFlow", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def tree(nodes: int, width: int = 10) -> dict[str, Any]:
    """`nodes` nodes filled breadth first, each with up to `width` children (short keys: the
    tree may be inline in the spec, which etcd bounds at ~1.5 MB)."""
    root: dict[str, Any] = {"i": 0}
    queue, at = [root], 0
    while len(queue) < nodes:
        parent = queue[at]
        at += 1
        children = [{"i": len(queue) + k} for k in range(min(width, nodes - len(queue)))]
        parent["c"] = children
        queue.extend(children)
    return root


def verdict(rss: int, status: dict[str, Any]) -> str:
    return "pass" if rss <= MAX_RSS and len(json.dumps(status)) <= MAX_STATUS else "FAIL"


def peak_rss(pid: int) -> int:
    """VmHWM of a live process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def etcd_sizes(state: Path) -> tuple[int, int]:
    """etcd's database size and the part of it in use, in bytes."""
    ports = dict(line.split() for line in (state / "ports").read_text().splitlines())
    text = urllib.request.urlopen(f"http://127.0.0.1:{ports['etcd']}/metrics").read().decode()
    found = {}
    for name in ("etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes"):
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        found[name] = int(float(match.group(1))) if match else -1
    return found["etcd_mvcc_db_total_size_in_bytes"], found[
        "etcd_mvcc_db_total_size_in_use_in_bytes"
    ]


def apiserver_writes(api: client.ApiClient) -> Counter[str]:
    """Mutating requests the API server has answered, by resource, since it started."""
    method, url, headers, body, _ = api.param_serialize("GET", "/metrics", auth_settings=[])
    response = api.call_api(method, url, headers, body)
    response.read()
    counts: Counter[str] = Counter()
    pattern = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$", re.M)
    for labels, value in pattern.findall(response.data.decode()):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("verb") in MUTATING:
            counts[fields.get("resource", "")] += int(float(value))
    return counts


def journal_maps(core: client.CoreV1Api, flow: str) -> tuple[int, int]:
    """The flow's journal ConfigMaps: how many, and the bytes of their data."""
    found = core.list_namespaced_config_map(
        NAMESPACE, label_selector=f"meta-orchestrator.io/journal-of={flow}"
    ).items
    return len(found), sum(len(v) for cm in found for v in (cm.data or {}).values())


def wait_ended(
    custom: client.CustomObjectsApi, name: str, seconds: float, pid: int, every: float
) -> dict[str, Any]:
    """The flow once it has ended; every `every` seconds meanwhile, a line of how far it is
    (units ended, the operator's RSS now and at its peak, the machine's load)."""
    began = time.monotonic()
    deadline, told = began + seconds, began
    while time.monotonic() < deadline:
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name
        )
        if (found.get("status") or {}).get("phase") in ENDED:
            return found
        if every and time.monotonic() - told >= every:
            told = time.monotonic()
            progress = (found.get("status") or {}).get("progress", "")
            print(
                f"  {told - began:7.0f} s: {progress} units ended, operator RSS "
                f"{rss_now(pid) / 2**20:.1f} MiB (peak {peak_rss(pid) / 2**20:.1f}), "
                f"load {Path('/proc/loadavg').read_text().split()[0]}",
                flush=True,
            )
        time.sleep(1.0)
    raise SystemExit(f"{name} did not end within {seconds:.0f} s")


def rss_now(pid: int) -> int:
    """VmRSS of a live process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pods_left(core: client.CoreV1Api) -> int:
    """Pods in the namespace, counted a page at a time."""
    count, token = 0, None
    while True:
        page = core.list_namespaced_pod(NAMESPACE, limit=500, _continue=token)
        count += len(page.items)
        token = page.metadata._continue
        if not token:
            return count


def run_one(
    api: client.ApiClient, state: Path, args: argparse.Namespace, shape: str, units: int
) -> None:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    name = f"{shape}-{units}"
    store = Path(tempfile.mkdtemp(prefix=f"meta-bench-store-{name}-"))
    command = [
        str(META), "operator", "-n", NAMESPACE, "--kubeconfig", str(state / "kubeconfig"),
        "--node-selector", "type=kwok", "--toleration", "kwok.x-k8s.io/node:NoSchedule",
        "--metrics-port", "0", "--qps", str(args.qps), "--burst", str(args.burst),
    ]  # fmt: skip
    command += (
        ["--keep-journal"] if args.no_store else ["--compact-journal", "--store-dir", str(store)]
    ) + ["--data-dir", str(store)]
    db_before, in_use_before = etcd_sizes(state)
    writes_before = apiserver_writes(api)
    log = (state / f"operator-{name}.log").open("w")
    operator = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        data_dir = None if args.inline_tree else store
        body = flow_body(name, shape, units, args.max_active, args.pod_gc, data_dir)
        began = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        found = wait_ended(
            custom, name, args.wait_per_unit * units + 120, operator.pid, args.progress_every
        )
        took = time.monotonic() - began
        status = found["status"]
        rss = peak_rss(operator.pid)
        maps, journal_bytes = journal_maps(core, name)
        journal = f"{maps} ConfigMaps/{journal_bytes} B"
        if "journalCompacted" in status:
            # The status that ends the flow names the file; the chunks go right after it.
            time.sleep(5)
            left, left_bytes = journal_maps(core, name)
            done = status["journalCompacted"]
            journal = (
                f"{done['bytes']} B of {done['units']} records compacted into the store, "
                f"{left} ConfigMaps/{left_bytes} B left"
            )
            rss = peak_rss(operator.pid)
        # The end's sweep (podGC) is the last thing the operator does for the flow.
        time.sleep(5 if args.pod_gc else 0)
        left_pods = pods_left(core)
    finally:
        operator.terminate()
        operator.wait()
        log.close()
    writes = apiserver_writes(api) - writes_before
    db_after, in_use_after = etcd_sizes(state)
    ours = int(status.get("apiWrites", 0))
    print(
        f"{shape:6} {units:>7} units: {status['phase']}, {took:8.1f} s, "
        f"{took / units * 1000:6.1f} ms/unit, peak RSS {rss / 2**20:6.1f} MiB, "
        f"status {len(json.dumps(status))} B, journal {journal}, pods left {left_pods}, "
        f"etcd db {db_before / 2**20:.1f} -> {db_after / 2**20:.1f} MiB "
        f"(in use {in_use_before / 2**20:.1f} -> {in_use_after / 2**20:.1f}), "
        f"operator writes {ours / units:.2f}/unit, API server writes "
        f"{sum(writes.values()) / units:.2f}/unit {dict(writes.most_common(6))}: "
        f"{verdict(rss, status)}",
        flush=True,
    )


def run_in_process(args: argparse.Namespace, shape: str, units: int) -> None:
    """The operator's flow runner on the fake API of tests/kube/unit (see the docstring)."""
    import asyncio
    import resource

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from meta.kube.broker import Watches
    from meta.kube.controller.reconcile import run_flow
    from meta.kube.types import OperatorSettings, PodSettings
    from tests.kube.unit.fakes import FakeApi, FakeKubelet

    class LeanApi(FakeApi):
        """Keeps the last status only, and no pod once its kubelet has it."""

        async def patch_flow_status(self, namespace: str, name: str, status: Any) -> None:
            await super().patch_flow_status(namespace, name, status)
            del self.statuses[:-1]

    api, watches = LeanApi(), Watches()
    kubelet = FakeKubelet(api, watches, delay=0.01)

    def created(pod: dict[str, Any]) -> None:
        kubelet._created(pod)
        api.pods.pop((pod["metadata"]["namespace"], pod["metadata"]["name"]), None)
        api.created.clear()

    api.on_create = created
    store = tempfile.mkdtemp(prefix="meta-bench-store-")
    settings = OperatorSettings(
        pods=PodSettings(), store_dir=store, data_dir=Path(store), compact_journal=not args.no_store
    )
    data_dir = None if args.inline_tree else Path(store)
    body = flow_body(f"{shape}-{units}", shape, units, args.max_active, args.pod_gc, data_dir)
    body["metadata"].update(namespace=NAMESPACE, uid=f"uid-{shape}-{units}", generation=1)
    began = time.monotonic()
    phase = asyncio.run(run_flow(api, watches, body, settings))
    took = time.monotonic() - began
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    status = api.status
    compacted = status.get("journalCompacted", {})
    print(
        f"{shape:6} {units:>7} units in process: {phase}, {took:8.1f} s, "
        f"{took / units * 1000:6.2f} ms/unit, peak RSS {rss / 2**20:6.1f} MiB, "
        f"status {len(json.dumps(status))} B, journal {compacted.get('bytes', 0)} B compacted, "
        f"{len(api.config_maps)} ConfigMaps left, operator writes "
        f"{status.get('apiWrites', 0) / units:.2f}/unit: {verdict(rss, status)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000", help="e.g. 1000,10000,100000")
    parser.add_argument("--shapes", default="fanout,dfs")
    parser.add_argument("--max-active", type=int, default=500)
    parser.add_argument("--qps", type=float, default=200.0)
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--wait-per-unit", type=float, default=0.5, help="seconds, to give up")
    parser.add_argument("--no-store", action="store_true", help="run the operator storeless")
    parser.add_argument("--in-process", action="store_true", help="no plane: see the docstring")
    parser.add_argument("--pod-gc", default="", help="the flows' spec.podGC.strategy (none: keep)")
    parser.add_argument("--progress-every", type=float, default=0, help="seconds between lines")
    parser.add_argument(
        "--inline-tree", action="store_true", help="the dfs tree inline in the spec, not a file"
    )
    args = parser.parse_args()
    if args.in_process:
        # One size and shape per process: each peak RSS is its own.
        for size in (int(s) for s in args.sizes.split(",")):
            for shape in args.shapes.split(","):
                one = [sys.executable, __file__, "--in-process", "--sizes", str(size),
                       "--shapes", shape, "--max-active", str(args.max_active)]  # fmt: skip
                if len(args.sizes.split(",")) * len(args.shapes.split(",")) == 1:
                    run_in_process(args, shape, size)
                else:
                    one += ["--no-store"] if args.no_store else []
                    one += ["--inline-tree"] if args.inline_tree else []
                    subprocess.run([*one, "--pod-gc", args.pod_gc], check=True)
        return
    state = Path(tempfile.mkdtemp(prefix="meta-bench-scale-"))
    started = time.monotonic()
    kubeconfig = start_plane(state)
    print(f"plane up in {time.monotonic() - started:.1f} s ({state}); qps {args.qps}, "
          f"burst {args.burst}, maxActive {args.max_active}", flush=True)  # fmt: skip
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        ensure_crd(api)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        for size in (int(s) for s in args.sizes.split(",")):
            for shape in args.shapes.split(","):
                run_one(api, state, args, shape, size)
    finally:
        stop_plane(state)


if __name__ == "__main__":
    main()
