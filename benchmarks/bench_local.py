"""The local runtime against a plain floor: 1,000 `true` steps on a 10-ary tree, and a chain.

`meta.local.runner.start_run` runs a depth-first walk (`visit: {name: "t-{{ node.id }}", run:
{command: [true, "t-{{ node.id }}"]}}`: names and commands templated, as real flows have them)
into a fresh workdir: journal, store, logs, report and all. Two shapes of data: a 10-ary tree of
`--nodes` nodes, and a chain of `--chain` nodes (each node the only child of the one before).

The floor is the least a runner of the same walk must do: a ThreadPoolExecutor(2) running
`subprocess.run(["true", name])` per node, each node submitted from the done-callback of the
node it waits for (its parent in pre-order, its last child in post-order), with no loop of its
own. The floor that an earlier version of this script used, a `wait(FIRST_COMPLETED)` loop
around the same pool, is shown too, as `loop floor`; and, when dask is installed (it is not one
of this project's dependencies: `pip install dask` to see it), a peer: the same walk as a dask
graph on its threaded scheduler with 2 workers. Wall times are the median of `--repeat`
(runs interleaved, so drift hits all alike); so is the CPU time each run took (this process's
threads and the steps' processes, user + system), which a machine busy with other work
changes less than it changes wall time, and the runner's own CPU time per step (this process's
threads alone: `bench_loop_model.py` shows what a runner can afford of it).

Target (issue 17): meta / plain floor <= 1.3, macro scope, workdir on disk, on both shapes.
Shown for information: micro scope, and macro scope with the workdir on RAM (/dev/shm), which
separates the runtime's own cost from the cost of creating its files on the workdir's disk.

    python benchmarks/bench_local.py [--nodes 1000] [--chain 100] [--order pre|post]
                                     [--repeat 3] [--base DIR] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import machine

from meta.local.runner import start_run

RATIO_TARGET = 1.3
WORKERS = 2

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {{name: bench-local}}
spec:
  inputs:
    tree: {{path: {data}}}
  root:
    name: walk
    scope: {scope}
    pattern: dfs
    order: {order}
    maxActive: {workers}
    over: {{input: tree, children: children}}
    visit: {{name: "t-{{{{ node.id }}}}", run: {{command: ["true", "t-{{{{ node.id }}}}"]}}}}
"""

Node = dict[str, Any]


def make_tree(nodes: int, width: int = 10) -> Node:
    """`nodes` nodes, filled breadth first, each with up to `width` children."""
    root: Node = {"id": 0}
    queue, head = [root], 0
    while len(queue) < nodes:
        parent = queue[head]
        head += 1
        children = [{"id": len(queue) + i} for i in range(min(width, nodes - len(queue)))]
        parent["children"] = children
        queue.extend(children)
    return root


def make_chain(nodes: int) -> Node:
    """`nodes` nodes, each the only child of the one before (built bottom up: no recursion)."""
    node: Node = {"id": nodes - 1}
    for number in range(nodes - 2, -1, -1):
        node = {"id": number, "children": [node]}
    return node


def _links(root: Node) -> tuple[dict[int, Node | None], dict[int, int], list[Node]]:
    """Each node's parent and child count (by `id()`), and the leaves in pre-order."""
    parent_of: dict[int, Node | None] = {id(root): None}
    waiting: dict[int, int] = {}
    leaves, stack = [], [root]
    while stack:
        node = stack.pop()
        kids = node.get("children", [])
        waiting[id(node)] = len(kids)
        if not kids:
            leaves.append(node)
        for kid in kids:
            parent_of[id(kid)] = node
        stack.extend(reversed(kids))
    return parent_of, waiting, leaves


def _command(node: Node) -> list[str]:
    return ["true", f"t-{node['id']}"]


# --- the floors: plain thread-pool runners of the same walk in the same dependency order ------


def run_step(command: list[str]) -> None:
    subprocess.run(command, check=True)


def floor(root: Node, order: str, step: Callable[[list[str]], None] = run_step) -> int:
    """The plain floor: each node is submitted from the done-callback of what it waits for.
    (`step` runs a node's command: bench_loop_model.py gives one that does more.)"""
    parent_of, waiting, leaves = _links(root)
    total = len(parent_of)
    finished = threading.Event()
    lock = threading.Lock()
    state = {"count": 0}
    errors: list[BaseException] = []

    with ThreadPoolExecutor(WORKERS) as pool:

        def submit(node: Node) -> None:
            future = pool.submit(step, _command(node))
            future.add_done_callback(lambda done: ended(node, done))

        def ended(node: Node, done: Future[Any]) -> None:
            error = done.exception()
            if error is not None:
                errors.append(error)
                finished.set()
                return
            with lock:
                state["count"] += 1
                if state["count"] == total:
                    finished.set()
                if order == "post":
                    parent = parent_of[id(node)]
                    if parent is None:
                        return
                    waiting[id(parent)] -= 1
                    ready = [parent] if waiting[id(parent)] == 0 else []
                else:
                    ready = node.get("children", [])
            for child in ready:
                submit(child)

        for start in [root] if order == "pre" else leaves:
            submit(start)
        finished.wait()
    if errors:
        raise errors[0]
    return state["count"]


def loop_floor(root: Node, order: str) -> int:
    """The same walk from a `wait(FIRST_COMPLETED)` loop (this script's floor until issue 17)."""
    parent_of, waiting, leaves = _links(root)
    ready = [root] if order == "pre" else leaves[::-1]
    running: dict[Future[subprocess.CompletedProcess[bytes]], Node] = {}
    count = 0
    with ThreadPoolExecutor(WORKERS) as pool:
        while ready or running:
            while ready:
                node = ready.pop()
                running[pool.submit(subprocess.run, _command(node), check=True)] = node
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                node = running.pop(future)
                future.result()
                count += 1
                if order == "pre":
                    ready.extend(reversed(node.get("children", [])))
                    continue
                parent = parent_of[id(node)]
                if parent is not None:
                    waiting[id(parent)] -= 1
                    if waiting[id(parent)] == 0:
                        ready.append(parent)
    return count


def dask_threaded(root: Node, order: str) -> int:
    """A peer: the same walk as a dask graph (a task per node, depending on what it waits for)
    run by dask's threaded scheduler with 2 workers; each task runs `subprocess.run`."""
    import dask.threaded  # a peer, installed by hand: not one of this project's dependencies

    parent_of = _links(root)[0]
    graph: dict[tuple[str, int], Any] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        kids = node.get("children", [])
        stack.extend(kids)
        if order == "pre":
            parent = parent_of[id(node)]
            after = [] if parent is None else [("t", parent["id"])]
        else:
            after = [("t", kid["id"]) for kid in kids]
        # Keys are tuples: a string key would be taken for the argument of a command naming it.
        graph[("t", node["id"])] = (_run_after, _command(node), after)
    dask.threaded.get(graph, list(graph), num_workers=WORKERS)
    return len(graph)


def _run_after(command: list[str], _after: list[None]) -> None:
    subprocess.run(command, check=True)


# --- the measurement -----------------------------------------------------------------------------


def filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (from /proc/mounts), or '?'."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "?"
    resolved = str(path.resolve())
    best = ("", "?")
    for mount in mounts:
        point = mount[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best[0]):
            best = (point, mount[2])
    return best[1]


def cpu_seconds() -> float:
    """User + system seconds of this process's threads and of the children it reaped."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def own_cpu_seconds() -> float:
    """User + system seconds of this process's threads alone (the runner's own work)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def run_meta(flow: Path, workdir: Path) -> tuple[float, int]:
    started = time.perf_counter()
    outcome = start_run(flow, workdir, {})
    elapsed = time.perf_counter() - started
    if outcome.state != "succeeded":
        raise SystemExit(f"the run {workdir} ended {outcome.state}: {outcome.error}")
    return elapsed, sum(1 for u in outcome.report["units"] if u["state"] == "succeeded")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the tree")
    parser.add_argument("--chain", type=int, default=100, help="nodes of the chain (0: none)")
    parser.add_argument("--order", choices=["pre", "post"], default="pre")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", type=Path, help="where the workdirs go (default: temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdirs (printed)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-local-", dir=args.base))
    ram = Path("/dev/shm")
    ram_tmp = (
        Path(tempfile.mkdtemp(prefix="bench-local-", dir=ram))
        if ram.is_dir() and os.access(ram, os.W_OK)
        else None
    )
    shapes = {"tree": make_tree(args.nodes)}
    if args.chain:
        shapes["chain"] = make_chain(args.chain)
    print(f"machine: {machine.describe()}", flush=True)
    for shape, root in shapes.items():
        measure(shape, root, args, tmp, ram_tmp)
    kept = [tmp] if ram_tmp is None else [tmp, ram_tmp]
    if args.keep:
        print("\nworkdirs kept under " + ", ".join(str(k) for k in kept))
    else:
        for directory in kept:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def measure(
    shape: str, root: Node, args: argparse.Namespace, tmp: Path, ram_tmp: Path | None
) -> None:
    """Run every runner on one shape `--repeat` times, interleaved, and print the medians."""
    nodes = len(_links(root)[0])
    data = tmp / f"{shape}.json"
    data.write_text(json.dumps(root), encoding="utf-8")
    flows = {}
    for scope in ("macro", "micro"):
        flows[scope] = tmp / f"{shape}-{scope}.flow.yaml"
        flows[scope].write_text(
            FLOW.format(data=data, scope=scope, order=args.order, workers=WORKERS)
        )
    floors: dict[str, Callable[[Node, str], int]] = {"floor": floor, "loop floor": loop_floor}
    if importlib.util.find_spec("dask") is not None:
        floors["dask"] = dask_threaded
    # (label, flow, where its workdirs go); workdirs are removed only at the end, since deleting
    # thousands of files between runs slows the next run's file creation on some filesystems.
    runs = [("macro", flows["macro"], tmp), ("micro", flows["micro"], tmp)]
    if ram_tmp is not None:
        runs.insert(1, ("macro-ram", flows["macro"], ram_tmp))
    times: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    owns: dict[str, list[float]] = {}
    for attempt in range(args.repeat):
        this: dict[str, float] = {}
        for name, runner in floors.items():
            cpu, own, started = cpu_seconds(), own_cpu_seconds(), time.perf_counter()
            count = runner(root, args.order)
            this[name] = time.perf_counter() - started
            cpus.setdefault(name, []).append(cpu_seconds() - cpu)
            owns.setdefault(name, []).append(own_cpu_seconds() - own)
            if count != nodes:
                raise SystemExit(f"{name}: ran {count} steps, expected {nodes}")
        for label, flow, base in runs:
            cpu, own = cpu_seconds(), own_cpu_seconds()
            this[label], units = run_meta(flow, base / f"run-{shape}-{label}-{attempt}")
            cpus.setdefault(label, []).append(cpu_seconds() - cpu)
            owns.setdefault(label, []).append(own_cpu_seconds() - own)
            if units != nodes:
                raise SystemExit(f"{label}: {units} units succeeded, expected {nodes}")
        print(
            f"{shape} run {attempt + 1}/{args.repeat}: "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in this.items()),
            flush=True,
        )
        for name, seconds in this.items():
            times.setdefault(name, []).append(seconds)
    median = {name: statistics.median(values) for name, values in times.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpus.items()}
    own_median = {name: statistics.median(values) for name, values in owns.items()}
    print(
        f"\n{shape}: {nodes} `true` steps, dfs {args.order}-order, maxActive {WORKERS}; "
        f"wall and CPU time (user + system, with the steps'), median of {args.repeat}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    titles = {
        "floor": "floor (pool(2), submit from done-callbacks)",
        "loop floor": "loop floor (pool(2), wait FIRST_COMPLETED)",
        "dask": "dask, threaded scheduler, 2 workers (peer)",
        "macro": f"meta run, macro (workdir on {filesystem(tmp)})",
        "macro-ram": "meta run, macro (workdir on "
        + (filesystem(ram_tmp) if ram_tmp else "?")
        + ")",
        "micro": f"meta run, micro (workdir on {filesystem(tmp)})",
    }
    print(
        f"{'runner':<48}{'wall s':>8}{'ms/step':>9}{'ratio':>8}{'cpu s':>8}{'ratio':>7}"
        f"{'own ms/step':>12}  target"
    )
    for label in titles:
        if label not in median:
            continue
        ratio = median[label] / median["floor"]
        verdict = (
            f"<= {RATIO_TARGET}: {'pass' if ratio <= RATIO_TARGET else 'FAIL'}"
            if label == "macro"
            else ""
            if label.endswith("floor") or label == "dask"
            else "(info)"
        )
        print(
            f"{titles[label]:<48}{median[label]:>8.2f}"
            f"{median[label] / nodes * 1e3:>9.2f}{ratio:>8.2f}"
            f"{cpu_median[label]:>8.2f}{cpu_median[label] / cpu_median['floor']:>7.2f}"
            f"{own_median[label] / nodes * 1e3:>12.2f}  {verdict}"
        )


if __name__ == "__main__":
    sys.exit(main())
