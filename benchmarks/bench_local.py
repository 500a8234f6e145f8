"""The local runtime against a floor: 1,000 `true` steps on a 10-ary tree, maxActive 2.

`meta.local.runner.start_run` runs a depth-first walk (`visit: {name: t, run: {command:
[true]}}`) into a fresh workdir: journal, store, logs, report and all. The floor is the least a
runner of the same tree must do: a ThreadPoolExecutor(2) running `subprocess.run(["true"])` per
node, each node after its parent (pre-order) or after its children (post-order), as the flow
says. Wall times are the best of `--repeat` (runs interleaved, so drift hits both alike).

Target (issue 2): local runtime / floor <= 1.3, macro scope, workdir in the system temp dir.
Shown for information: micro scope, and macro scope with the workdir on RAM (/dev/shm), which
separates the runtime's own cost from the cost of creating its files on the workdir's disk.

    python benchmarks/bench_local.py [--nodes 1000] [--order pre|post] [--repeat 3] [--base DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from meta.local.runner import start_run

RATIO_TARGET = 1.3
WORKERS = 2

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {{name: bench-local}}
spec:
  inputs:
    tree: {{path: tree.json}}
  root:
    name: walk
    scope: {scope}
    pattern: dfs
    order: {order}
    maxActive: {workers}
    over: {{input: tree, children: children}}
    visit: {{name: t, run: {{command: ["true"]}}}}
"""


def make_tree(nodes: int, width: int = 10) -> dict[str, Any]:
    """`nodes` nodes, filled breadth first, each with up to `width` children."""
    root: dict[str, Any] = {"id": 0}
    queue, head = [root], 0
    while len(queue) < nodes:
        parent = queue[head]
        head += 1
        children = [{"id": len(queue) + i} for i in range(min(width, nodes - len(queue)))]
        parent["children"] = children
        queue.extend(children)
    return root


# --- the floor: a plain thread-pool runner of the same tree in the same dependency order -------


def floor(root: dict[str, Any], order: str, command: Sequence[str] = ("true",)) -> int:
    """Run `command` once per node, parents before children (pre) or after them (post)."""
    parent_of: dict[int, dict[str, Any] | None] = {id(root): None}
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
    ready = [root] if order == "pre" else leaves[::-1]
    running: dict[Future[subprocess.CompletedProcess[bytes]], dict[str, Any]] = {}
    count = 0
    with ThreadPoolExecutor(WORKERS) as pool:
        while ready or running:
            while ready:
                node = ready.pop()
                running[pool.submit(subprocess.run, list(command), check=True)] = node
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


def run_meta(flow: Path, workdir: Path) -> tuple[float, int]:
    started = time.perf_counter()
    outcome = start_run(flow, workdir, {})
    elapsed = time.perf_counter() - started
    if outcome.state != "succeeded":
        raise SystemExit(f"the run {workdir} ended {outcome.state}: {outcome.error}")
    return elapsed, sum(1 for u in outcome.report["units"] if u["state"] == "succeeded")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
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
    root = make_tree(args.nodes)
    (tmp / "tree.json").write_text(json.dumps(root), encoding="utf-8")
    flows = {}
    for scope in ("macro", "micro"):
        flows[scope] = tmp / f"{scope}.flow.yaml"
        flows[scope].write_text(FLOW.format(scope=scope, order=args.order, workers=WORKERS))

    # (label, flow, where its workdirs go); workdirs are removed only at the end, since deleting
    # thousands of files between runs slows the next run's file creation on some filesystems.
    runs = [("macro", flows["macro"], tmp), ("micro", flows["micro"], tmp)]
    if ram_tmp is not None:
        runs.insert(1, ("macro-ram", flows["macro"], ram_tmp))
    best: dict[str, float] = {}
    for attempt in range(args.repeat):
        started = time.perf_counter()
        count = floor(root, args.order)
        times = {"floor": time.perf_counter() - started}
        if count != args.nodes:
            raise SystemExit(f"floor: ran {count} steps, expected {args.nodes}")
        for label, flow, base in runs:
            times[label], units = run_meta(flow, base / f"run-{label}-{attempt}")
            if units != args.nodes:
                raise SystemExit(f"{label}: {units} units succeeded, expected {args.nodes}")
        print(
            f"run {attempt + 1}/{args.repeat}: "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items()),
            flush=True,
        )
        for name, seconds in times.items():
            best[name] = min(best.get(name, seconds), seconds)

    print(
        f"\nlocal runtime vs floor: {args.nodes} `true` steps, 10-ary tree, "
        f"dfs {args.order}-order, maxActive {WORKERS}; wall time best of {args.repeat}"
    )
    titles = {
        "macro": f"meta run, macro (workdir on {filesystem(tmp)})",
        "macro-ram": f"meta run, macro (workdir on {filesystem(ram)})",
        "micro": f"meta run, micro (workdir on {filesystem(tmp)})",
    }
    print(f"{'runner':<48}{'wall s':>8}{'ms/step':>9}{'ratio':>8}  target")
    floor_ms = best["floor"] / args.nodes * 1e3
    floor_title = "floor (ThreadPoolExecutor(2) + subprocess.run)"
    print(f"{floor_title:<48}{best['floor']:>8.2f}{floor_ms:>9.2f}")
    for label, _, _ in runs:
        ratio = best[label] / best["floor"]
        verdict = (
            f"<= {RATIO_TARGET}: {'pass' if ratio <= RATIO_TARGET else 'FAIL'}"
            if label == "macro"
            else "(info)"
        )
        print(
            f"{titles[label]:<48}{best[label]:>8.2f}"
            f"{best[label] / args.nodes * 1e3:>9.2f}{ratio:>8.2f}  {verdict}"
        )
    kept = [tmp] if ram_tmp is None else [tmp, ram_tmp]
    if args.keep:
        print("\nworkdirs kept under " + ", ".join(str(k) for k in kept))
    else:
        for directory in kept:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
