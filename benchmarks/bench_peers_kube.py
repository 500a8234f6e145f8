"""meta-orchestrator against a peer, Argo Workflows, on the same local plane, side by side.

Builds Argo (benchmarks/argo/build.sh: workflow-controller and argoexec from the Go module
github.com/argoproj/argo-workflows/v4, cached by version; never a dependency of meta), starts one
plane of tests/e2e/cluster (the kwok node, and the real node unless --no-real-node: root needed)
with Argo's CRDs and an audit log of every write, and runs the same work through `meta operator`
and Argo's workflow-controller, each a host process with the plane's admin kubeconfig, namespaced
to a namespace of its own, with the same client budget (--qps, --burst) and the same parallelism
(our maxActive, Argo's spec.parallelism). One controller runs at a time, a fresh process per part:

- fanout: --fanout units on the kwok node (each pod ~1 s there): our fanout pattern against
  Argo's steps `withParam`. Wall time (creation to the end phase), pods per second, API writes
  per unit (every create/update/patch/delete the controller's client made, from the API server's
  audit log, by user agent), the controller's CPU seconds over the run (/proc/PID/stat) and its
  peak RSS (VmHWM, since its start). Goal: meta >= 2x Argo's pods per second.
- chain (real node): --chain short Python steps one after another, each noting its start and end
  and passing the list on to the next: Argo with a pod per step (parameters passed through its
  outputs) and with one containerSet pod, against a meta macro section (a pod per step, data
  through the store) and a micro one (one pod, slots). Handoff = next start - previous end; p50,
  p95. Goal: micro >= 10x Argo's pod-per-step handoff.
- tree (kwok): a pre-order walk of a uniform tree (--tree-branching, --tree-depth: 10 and 3 give
  1,111 nodes), our dfs pattern against Argo's recursive steps template; then a path
  --deep-depth nodes deep, past Argo's recursion cap (its controller refuses templates nested 100
  deep: maxAllowedStackDepth in workflow/controller/controller.go). Goal: meta runs every size
  that Argo refuses.

Not a test: it prints. A quick run: --fanout 100 --chain 5 --tree-depth 2 --deep-depth 0.

    python benchmarks/bench_peers_kube.py [--fanout 1000] [--max-active 20] [--chain 20]
        [--tree-branching 10] [--tree-depth 3] [--deep-depth 110] [--qps 20] [--burst 30]
        [--no-real-node] [--parts fanout,chain,tree]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_kube import fanout as meta_fanout
from bench_node import flow as meta_chain
from bench_node import percentile, store
from bench_node import run as run_meta_chain
from cluster import ensure_crd, last_line, start_plane, stop_plane
from kubernetes import client, config
from kubernetes.client.rest import ApiException

HERE = Path(__file__).resolve().parent
META = Path(sys.executable).with_name("meta")
GROUP, VERSION, PLURAL = "meta-orchestrator.io", "v1alpha1", "metaflows"
ARGO = ("argoproj.io", "v1alpha1", "workflows")
ARGO_VERSION = "v4.0.5"
ARGOEXEC_IMAGE = f"meta-argoexec:{ARGO_VERSION}"
STEP_IMAGE = "meta-orchestrator:0.1.0"
REAL_NODE = "meta-node-0"
KWOK = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}
ENDED = ("Succeeded", "Failed", "Error", "Invalid")
WAIT_SECONDS = 1800
USER_AGENT = "bench-peers"
WRITES = ("create", "update", "patch", "delete", "deletecollection")
# Writers that are the plane's own (the scheduler binds, kwok and the kubelet set pod status,
# the controller manager's garbage collector and service-account controllers...).
PLANE = (
    "kube-scheduler",
    "kube-controller-manager",
    "kwok",
    "kubelet",
    "kube-proxy",
    "kube-apiserver",
)
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
"""

# Argo's chain step: the list comes in as a parameter and goes out through an output file.
ARGO_STEP = """
import time
started = time.time()
import json, sys
times = json.loads(sys.argv[1])
times.append([started, 0.0])
times[-1][1] = time.time()
open("/tmp/times.json", "w").write(json.dumps(times))
"""
# Argo's containerSet step: the list goes from container to container through a shared volume;
# the last one prints it.
ARGO_SET_STEP = """
import time
started = time.time()
import json, os
times = json.load(open("/work/times.json")) if os.path.exists("/work/times.json") else []
times.append([started, 0.0])
times[-1][1] = time.time()
open("/work/times.json", "w").write(json.dumps(times))
print("TIMES " + json.dumps(times))
"""


# ---- processes -------------------------------------------------------------------------------
class Controller:
    """A controller run as a host process: its CPU time and peak RSS, read from /proc."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def alive(self) -> None:
        if self.process.poll() is not None:
            code = self.process.returncode
            raise SystemExit(f"the controller exited ({code}); see {self.log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- what the API server saw -----------------------------------------------------------------
class Audit:
    """Writes in the API server's audit log since a mark, by writer: `plane` (scheduler, kwok,
    kubelet, controller manager), `bench` (this script), `argo` (controller and executor), and
    `meta` (everything else: the operator and the quarterbacks of its pods)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def since(self) -> dict[str, collections.Counter[str]]:
        found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for line in log:
                event = json.loads(line)
                if event.get("verb") not in WRITES:
                    continue
                agent = event.get("userAgent", "")
                ref = event.get("objectRef", {})
                what = ref.get("resource", "?") + (
                    "/" + ref["subresource"] if ref.get("subresource") else ""
                )
                found[writer(agent)][f"{event['verb']} {what}"] += 1
        return found


def writer(agent: str) -> str:
    if agent.startswith(USER_AGENT):
        return "bench"
    if agent.startswith("argo") or "argo-workflows" in agent:
        return "argo"
    if agent.split("/", 1)[0] in PLANE:
        return "plane"
    return "meta"


# ---- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    engine: str
    units: int
    wall: float
    cpu: float
    rss_mb: float
    writes: collections.Counter[str]
    phase: str

    def line(self) -> str:
        total = sum(self.writes.values())
        return (
            f"{self.engine:<26} {self.phase:<9} {self.units:>6} units  {self.wall:7.1f} s  "
            f"{self.units / self.wall:6.2f} pods/s  {total / self.units:5.2f} writes/unit  "
            f"CPU {self.cpu:6.1f} s  peak RSS {self.rss_mb:6.0f} MB"
        )

    def breakdown(self) -> str:
        return ", ".join(f"{what} {n}" for what, n in self.writes.most_common())


def measured(
    engine: str,
    units: int,
    controller: Controller,
    audit: Audit,
    side: str,
    go: Callable[[], str],
) -> Run:
    """Run `go` (which starts the work and waits for its end phase) with that controller alone."""
    controller.alive()
    time.sleep(2)  # the controller's informers have synced and it is idle
    audit.mark()
    cpu = controller.cpu_seconds()
    began = time.monotonic()
    phase = go()
    wall = time.monotonic() - began
    cpu = controller.cpu_seconds() - cpu
    rss = controller.peak_rss_mb()
    time.sleep(1)  # the audit log's last lines (blocking mode writes them before replying)
    writes = audit.since().get(side, collections.Counter())
    run = Run(engine, units, wall, cpu, rss, writes, phase)
    print(run.line(), flush=True)
    print(f"    writes: {run.breakdown()}", flush=True)
    return run


# ---- the two controllers ---------------------------------------------------------------------
@dataclass(frozen=True)
class Plane:
    api: client.ApiClient
    kubeconfig: Path
    state: Path
    argo: Path  # Argo's build directory
    qps: float
    burst: int
    argo_requeue: str  # Argo's DEFAULT_REQUEUE_TIME

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)


@contextlib.contextmanager
def meta_operator(plane: Plane, namespace: str, *flags: str) -> Iterator[Controller]:
    operator = Controller(
        [
            str(META),
            "operator",
            "-n",
            namespace,
            "--kubeconfig",
            str(plane.kubeconfig),
            "--qps",
            str(plane.qps),
            "--burst",
            str(plane.burst),
            "--metrics-port",
            "0",
            *flags,
        ],
        plane.state / "logs" / f"meta-operator-{namespace}.log",
    )
    try:
        yield operator
    finally:
        operator.stop()


@contextlib.contextmanager
def argo_controller(plane: Plane, namespace: str) -> Iterator[Controller]:
    """Argo's workflow-controller, namespaced, with the configuration its docs start from: its
    own executor image (argoexec from the same build) and the metrics server on a free port."""
    with contextlib.suppress(ApiException):
        plane.core.delete_namespaced_config_map("workflow-controller-configmap", namespace)
    plane.core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "workflow-controller-configmap"},
            "data": {"metricsConfig": f"enabled: true\nport: {free_port()}\n"},
        },
    )
    controller = Controller(
        [
            str(plane.argo / "bin" / "workflow-controller"),
            "--kubeconfig",
            str(plane.kubeconfig),
            "--namespace",
            namespace,
            "--namespaced",
            "--managed-namespace",
            namespace,
            "--qps",
            str(plane.qps),
            "--burst",
            str(int(plane.burst)),
            "--executor-image",
            ARGOEXEC_IMAGE,
            "--executor-image-pull-policy",
            "IfNotPresent",
        ],
        plane.state / "logs" / f"argo-controller-{namespace}.log",
        env={"LEADER_ELECTION_DISABLE": "true", "DEFAULT_REQUEUE_TIME": plane.argo_requeue},
    )
    try:
        yield controller
    finally:
        controller.stop()


def namespace(plane: Plane, name: str, argo: bool = False) -> str:
    plane.core.create_namespace({"metadata": {"name": name}})
    if argo:
        # What Argo's executor (the wait container) needs: to report its outputs.
        rbac = client.RbacAuthorizationV1Api(plane.api)
        rbac.create_namespaced_role(
            name,
            {
                "metadata": {"name": "executor"},
                "rules": [
                    {
                        "apiGroups": ["argoproj.io"],
                        "resources": ["workflowtaskresults"],
                        "verbs": ["create", "patch"],
                    }
                ],
            },
        )
        rbac.create_namespaced_role_binding(
            name,
            {
                "metadata": {"name": "executor"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "executor",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": name}],
            },
        )
        # The service account's token controller makes `default` shortly after the namespace.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(ApiException):
                plane.core.read_namespaced_service_account("default", name)
                break
            time.sleep(0.2)
    return name


def wait_phase(plane: Plane, plural: tuple[str, str, str], ns: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found: dict[str, Any] = plane.custom.get_namespaced_custom_object(
            *plural[:2], ns, plural[2], name
        )
        if (found.get("status") or {}).get("phase") in ENDED:
            return found
        time.sleep(0.2)
    raise SystemExit(f"{name} did not end within {WAIT_SECONDS} s")


def run_meta(plane: Plane, ns: str, body: dict[str, Any]) -> str:
    plane.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    found = wait_phase(plane, (GROUP, VERSION, PLURAL), ns, body["metadata"]["name"])
    return str(found["status"]["phase"])


def run_argo(plane: Plane, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    plane.custom.create_namespaced_custom_object(*ARGO[:2], ns, ARGO[2], body)
    return wait_phase(plane, ARGO, ns, body["metadata"]["name"])


def argo_phase(plane: Plane, ns: str, body: dict[str, Any], ended: dict[str, Any]) -> str:
    """Run a workflow to its end, keep it in `ended`; its phase."""
    ended.update(run_argo(plane, ns, body))
    return str(ended["status"]["phase"])


def workflow(
    name: str, parallelism: int | None, templates: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }
    if parallelism is not None:
        body["spec"]["parallelism"] = parallelism
    return body


def kwok_unit() -> dict[str, Any]:
    return {"name": "unit", **KWOK, "container": {"image": "busybox", "command": ["true"]}}


# ---- fan-out ---------------------------------------------------------------------------------
def bench_fanout(plane: Plane, audit: Audit, units: int, parallelism: int) -> list[Run]:
    print(
        f"\nfan-out: {units} kwok pods at parallelism {parallelism}, "
        f"client budget qps {plane.qps} burst {plane.burst}",
        flush=True,
    )
    runs = []
    ns = namespace(plane, "fanout-meta")
    with meta_operator(
        plane, ns, "--node-selector", "type=kwok", "--toleration", "kwok.x-k8s.io/node:NoSchedule"
    ) as operator:
        body = meta_fanout("fanout", units, parallelism)
        runs.append(
            measured(
                "meta fanout", units, operator, audit, "meta", lambda: run_meta(plane, ns, body)
            )
        )
    ns = namespace(plane, "fanout-argo", argo=True)
    with argo_controller(plane, ns) as controller:
        body = workflow(
            "fanout",
            parallelism,
            [
                {
                    "name": "main",
                    "steps": [
                        [
                            {
                                "name": "item",
                                "template": "unit",
                                "withParam": "{{workflow.parameters.items}}",
                            }
                        ]
                    ],
                },
                kwok_unit(),
            ],
            arguments={"parameters": [{"name": "items", "value": json.dumps(list(range(units)))}]},
        )
        runs.append(
            measured(
                "argo steps withParam",
                units,
                controller,
                audit,
                "argo",
                lambda: run_argo(plane, ns, body)["status"]["phase"],
            )
        )
    meta, argo = runs
    ratio = (meta.units / meta.wall) / (argo.units / argo.wall)
    print(f"meta's pods per second are {ratio:.2f}x Argo's (goal >= 2x)", flush=True)
    return runs


# ---- chain -----------------------------------------------------------------------------------
def handoffs(times: list[list[float]]) -> list[float]:
    return [times[i + 1][0] - times[i][1] for i in range(len(times) - 1)]


def summary(engine: str, steps: int, wall: float, values: list[float]) -> tuple[float, float]:
    p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
    print(
        f"{engine:<26} {steps} steps in {wall:6.1f} s; handoff p50 {p50 * 1000:6.0f} ms, "
        f"p95 {p95 * 1000:6.0f} ms",
        flush=True,
    )
    return p50, p95


def real_node_pod() -> dict[str, Any]:
    return {"nodeSelector": {"kubernetes.io/hostname": REAL_NODE}}


def argo_chain(steps: int) -> dict[str, Any]:
    chain = []
    for i in range(steps):
        times = "[]" if i == 0 else f"{{{{steps.step-{i - 1:02d}.outputs.parameters.times}}}}"
        chain.append(
            [
                {
                    "name": f"step-{i:02d}",
                    "template": "step",
                    "arguments": {"parameters": [{"name": "times", "value": times}]},
                }
            ]
        )
    step = {
        "name": "step",
        **real_node_pod(),
        "inputs": {"parameters": [{"name": "times"}]},
        "container": {
            "image": STEP_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-c", ARGO_STEP, "{{inputs.parameters.times}}"],
        },
        "outputs": {"parameters": [{"name": "times", "valueFrom": {"path": "/tmp/times.json"}}]},
    }
    return workflow("chain-pods", None, [{"name": "main", "steps": chain}, step])


def argo_container_set(steps: int) -> dict[str, Any]:
    containers = [
        {
            "name": f"step-{i:02d}",
            "image": STEP_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-c", ARGO_SET_STEP],
            **({"dependencies": [f"step-{i - 1:02d}"]} if i else {}),
        }
        for i in range(steps)
    ]
    main = {
        "name": "main",
        **real_node_pod(),
        "volumes": [{"name": "work", "emptyDir": {}}],
        "containerSet": {
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            "containers": containers,
        },
    }
    return workflow("chain-set", None, [main])


def bench_chain(plane: Plane, steps: int) -> None:
    print(f"\nchain: {steps} short Python steps on the real node", flush=True)
    results: dict[str, tuple[float, float]] = {}
    ns = namespace(plane, "chain-meta")
    folder = plane.state / "store" / ns
    store(plane.api, ns, folder)
    with meta_operator(
        plane,
        ns,
        "--node-selector",
        f"kubernetes.io/hostname={REAL_NODE}",
        "--image",
        STEP_IMAGE,
        "--store-claim",
        "store",
        "--store-dir",
        str(folder),
    ) as operator:
        for scope in ("micro", "macro"):
            operator.alive()
            began = time.monotonic()
            values = run_meta_chain(plane.custom, ns, meta_chain(f"chain-{scope}", scope, steps))
            results[f"meta {scope}"] = summary(
                f"meta {scope}", steps, time.monotonic() - began, values
            )
    ns = namespace(plane, "chain-argo", argo=True)
    with argo_controller(plane, ns) as controller:
        controller.alive()
        began = time.monotonic()
        found = run_argo(plane, ns, argo_chain(steps))
        wall = time.monotonic() - began
        if found["status"]["phase"] != "Succeeded":
            print(
                f"argo pod per step: {found['status']['phase']}: {found['status'].get('message')}",
                flush=True,
            )
        else:
            last = next(
                node
                for node in found["status"]["nodes"].values()
                if node.get("displayName") == f"step-{steps - 1:02d}" and node["type"] == "Pod"
            )
            times = json.loads(last["outputs"]["parameters"][0]["value"])
            results["argo pod per step"] = summary(
                "argo pod per step", steps, wall, handoffs(times)
            )
        began = time.monotonic()
        found = run_argo(plane, ns, argo_container_set(steps))
        wall = time.monotonic() - began
        pods = plane.core.list_namespaced_pod(
            ns, label_selector="workflows.argoproj.io/workflow=chain-set"
        ).items
        times = None
        if pods:
            with contextlib.suppress(ApiException):
                log = plane.core.read_namespaced_pod_log(
                    str(pods[0].metadata and pods[0].metadata.name),
                    ns,
                    container=f"step-{steps - 1:02d}",
                )
                lines = [line for line in log.splitlines() if line.startswith("TIMES ")]
                times = json.loads(lines[-1][len("TIMES ") :]) if lines else None
        if found["status"]["phase"] != "Succeeded" or not times:
            print(
                f"argo containerSet: {found['status']['phase']}: "
                f"{found['status'].get('message')} (no times read)",
                flush=True,
            )
        else:
            results["argo containerSet"] = summary(
                "argo containerSet", steps, wall, handoffs(times)
            )
    if "argo pod per step" in results and "meta micro" in results:
        for index, label in ((0, "p50"), (1, "p95")):
            ratio = results["argo pod per step"][index] / results["meta micro"][index]
            print(
                f"{label}: meta micro's handoff is {ratio:.1f}x faster than Argo's pod per "
                "step (goal >= 10x)",
                flush=True,
            )


# ---- tree ------------------------------------------------------------------------------------
def tree(branching: int, depth: int) -> dict[str, Any]:
    if depth == 0:
        return {}
    return {"children": [tree(branching, depth - 1) for _ in range(branching)]}


def nodes(branching: int, depth: int) -> int:
    return sum(branching**level for level in range(depth + 1))


def meta_dfs(name: str, branching: int, depth: int, parallelism: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetaFlow",
        "metadata": {"name": name},
        "spec": {
            "inputs": {"tree": {"value": tree(branching, depth)}},
            "root": {
                "name": "walk",
                "scope": "macro",
                "pattern": "dfs",
                "order": "pre",
                "maxActive": parallelism,
                "over": {"input": "tree", "children": "children"},
                "visit": {"name": "node", "run": {"image": "busybox", "command": ["true"]}},
            },
        },
    }


def argo_dfs(name: str, branching: int, depth: int, parallelism: int) -> dict[str, Any]:
    """A node's pod, then its children's subtrees: a steps template that calls itself."""
    node = {
        "name": "main",
        "inputs": {"parameters": [{"name": "depth", "value": "0"}]},
        "steps": [
            [{"name": "visit", "template": "unit"}],
            [
                {
                    "name": "child",
                    "template": "main",
                    "arguments": {
                        "parameters": [
                            {"name": "depth", "value": "{{=asInt(inputs.parameters.depth) + 1}}"}
                        ]
                    },
                    "withSequence": {
                        "count": f"{{{{=asInt(inputs.parameters.depth) < {depth} "
                        f"? {branching} : 0}}}}"
                    },
                }
            ],
        ],
    }
    body = workflow(name, parallelism, [node, kwok_unit()])
    return body


def bench_tree(
    plane: Plane, audit: Audit, branching: int, depth: int, deep: int, parallelism: int
) -> None:
    shapes = [("tree", branching, depth)]
    if deep:
        shapes.append(("path", 1, deep))
    for label, b, d in shapes:
        size = nodes(b, d)
        print(
            f"\ndfs, pre-order, over a {label}: branching {b}, depth {d}: {size} nodes "
            f"at parallelism {parallelism}",
            flush=True,
        )
        ns = namespace(plane, f"{label}-meta")
        with meta_operator(
            plane,
            ns,
            "--node-selector",
            "type=kwok",
            "--toleration",
            "kwok.x-k8s.io/node:NoSchedule",
        ) as operator:
            body = meta_dfs(label, b, d, parallelism)
            measured(
                "meta dfs",
                size,
                operator,
                audit,
                "meta",
                lambda body=body, ns=ns: run_meta(plane, ns, body),
            )
        ns = namespace(plane, f"{label}-argo", argo=True)
        with argo_controller(plane, ns) as controller:
            body = argo_dfs(label, b, d, parallelism)
            ended: dict[str, Any] = {}
            measured(
                "argo recursive steps",
                size,
                controller,
                audit,
                "argo",
                lambda body=body, ns=ns, ended=ended: argo_phase(plane, ns, body, ended),
            )
            if ended["status"]["phase"] != "Succeeded":
                # The cause, not the chain of "child 'x' failed" above it.
                causes = {
                    node["message"]
                    for node in ended["status"].get("nodes", {}).values()
                    if node.get("message") and not node["message"].startswith("child '")
                }
                print(f"    argo: {'; '.join(sorted(causes)) or ended['status'].get('message')}")


# ---- main ------------------------------------------------------------------------------------
def machine() -> str:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()
    return f"{cores} cores, {memory:.0f} GiB, load average {load[0]:.1f} at the start"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fanout", type=int, default=1000, help="units of the fan-out")
    parser.add_argument("--max-active", type=int, default=20, help="parallelism of both")
    parser.add_argument("--chain", type=int, default=20, help="steps of the chain")
    parser.add_argument("--tree-branching", type=int, default=10)
    parser.add_argument("--tree-depth", type=int, default=3)
    parser.add_argument(
        "--deep-depth",
        type=int,
        default=110,
        help="depth of the path past Argo's recursion cap (0: none)",
    )
    parser.add_argument("--qps", type=float, default=20.0, help="client budget of both")
    parser.add_argument("--burst", type=int, default=30, help="client budget of both")
    parser.add_argument(
        "--argo-requeue",
        default="1s",
        help="Argo's DEFAULT_REQUEUE_TIME (its default 10s; its source says 1s is the least "
        "that keeps its informers up to date, and short steps want it low)",
    )
    parser.add_argument("--parts", default="fanout,chain,tree")
    parser.add_argument("--no-real-node", action="store_true", help="kwok only: no chain, no root")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    real_node = "chain" in parts and not args.no_real_node
    print(f"machine: {machine()}", flush=True)
    began = time.monotonic()
    argo = Path(last_line(str(HERE / "argo" / "build.sh")))
    print(f"Argo {ARGO_VERSION} built or found in {time.monotonic() - began:.1f} s: {argo}")
    crds = sorted((argo / "crds").glob("*.yaml"))
    state = Path(tempfile.mkdtemp(prefix="meta-peers-"))
    policy = Path(tempfile.mkdtemp(prefix="meta-peers-audit-")) / "policy.yaml"
    policy.write_text(AUDIT_POLICY)
    began = time.monotonic()
    images = [argo / "argoexec-image.tar"] if real_node else []
    kubeconfig = start_plane(state, real_node, crds=crds, images=images, audit_policy=policy)
    print(
        f"plane{' and real node' if real_node else ''} up in {time.monotonic() - began:.1f} s "
        f"({state})",
        flush=True,
    )
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        api.user_agent = USER_AGENT
        ensure_crd(api)
        plane = Plane(api, kubeconfig, state, argo, args.qps, args.burst, args.argo_requeue)
        print(f"Argo's DEFAULT_REQUEUE_TIME: {args.argo_requeue}", flush=True)
        audit = Audit(state / "logs" / "audit.log")
        if "fanout" in parts:
            bench_fanout(plane, audit, args.fanout, args.max_active)
        if real_node:
            bench_chain(plane, args.chain)
        if "tree" in parts:
            bench_tree(
                plane, audit, args.tree_branching, args.tree_depth, args.deep_depth, args.max_active
            )
    finally:
        stop_plane(state)
        shutil.rmtree(policy.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
