"""The engine alone: CPU per unit and memory growth over a 100,000-node tree, no processes.

A no-op driver in this process stands in for a runtime: `start` returns a step that has already
exited 0. The tree is written as a JSON file and compiled with `compile_plan`, so the walked data
is the loaded input; compiling and loading are not measured.

Each configuration runs in a fresh interpreter (so memory figures are not polluted by earlier
runs). Per configuration:

- CPU: `time.process_time()` around `asyncio.run(engine.run())`, divided by the units run;
  the best of `--repeat` runs (other work on the machine only ever adds time).
- Memory (dfs is the target; bfs is shown for information):
  - traced: `tracemalloc` peak during the run, counted from a baseline taken after loading;
  - RSS: the kernel's high-water mark (VmHWM, reset through /proc/self/clear_refs just before
    the run) minus the resident size after loading. Includes interpreter and allocator slack.

Targets (issue 2): engine CPU <= 50 us per unit for dfs and bfs; dfs memory growth <= 50 MB.

    python benchmarks/bench_engine.py [--nodes 100000] [--branching 10|random] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meta.engine.driver import Exit, StepTask
from meta.engine.engine import Engine
from meta.plan.plan import compile_plan

CPU_TARGET_US = 50.0
MEMORY_TARGET_MB = 50.0
CONFIGS = [
    (pattern, order, limit, False)
    for pattern in ("dfs", "bfs")
    for order in ("pre", "post")
    for limit in (1, 4)
] + [("dfs", "pre", 1, True), ("dfs", "post", 1, True)]
"""(pattern, order, maxActive, the driver's wait() yields to the event loop once)."""

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {{name: bench-engine}}
spec:
  inputs:
    tree: {{path: tree.json}}
  root:
    name: walk
    scope: macro
    pattern: {pattern}
    order: {order}
    maxActive: {limit}
    over: {{input: tree, children: children}}
    visit: {{name: t, run: {{command: ["true"]}}}}
"""


class _Exited:
    def __init__(self, yields: bool) -> None:
        self._yields = yields

    async def wait(self) -> Exit:
        if self._yields:
            await asyncio.sleep(0)
        return Exit(0)

    async def stop(self) -> None:
        pass


class NoopDriver:
    """Every step has exited 0 by the time it is started.

    With `yields`, `wait()` first hands control to the event loop once, as any real driver does
    (a process exit is an event). Without it, a walk with maxActive 1 never lets the loop run.
    """

    def __init__(self, yields: bool = False) -> None:
        self.started = 0
        self._exited = _Exited(yields)

    async def start(self, task: StepTask) -> _Exited:
        self.started += 1
        return self._exited

    async def open_pod(self, pod: str) -> None:
        pass

    async def close_pod(self, pod: str) -> None:
        pass

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        pass

    def outputs(self, unit_id: str) -> str:
        return unit_id


def make_tree(nodes: int, branching: str, seed: int = 1) -> dict[str, Any]:
    """`nodes` nodes, filled breadth first: each node gets 10 children, or 1 to 20 at random."""
    rng = random.Random(seed)
    root: dict[str, Any] = {"id": 0, "value": 0}
    queue = [root]
    head = 0
    made = 1
    while made < nodes:
        parent = queue[head]
        head += 1
        width = 10 if branching == "10" else rng.randint(1, 20)
        children = []
        for _ in range(min(width, nodes - made)):
            child = {"id": made, "value": made % 97}
            children.append(child)
            queue.append(child)
            made += 1
        parent["children"] = children
    return root


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def one(flow: Path, repeat: int, yields: bool) -> dict[str, Any]:
    """Measure one configuration in this interpreter (called in a fresh child process)."""
    plan = compile_plan(flow)
    gc.collect()

    def run() -> tuple[float, int]:
        driver = NoopDriver(yields)
        engine = Engine(plan, driver)
        before = time.process_time()
        asyncio.run(engine.run())
        return time.process_time() - before, driver.started

    # First run: RSS high-water growth (nothing measured yet has touched the heap).
    rss_base = _rss_bytes()
    hwm_ok = _reset_hwm()
    cpu, units = run()
    hwm = _hwm_bytes()
    rss_growth = (hwm - rss_base) if (hwm_ok and hwm is not None) else None
    best = cpu
    for _ in range(repeat - 1):
        gc.collect()
        cpu, _ = run()
        best = min(best, cpu)
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "units": units,
        "cpu_s": best,
        "traced_bytes": peak - base,
        "rss_bytes": rss_growth,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--branching", choices=["10", "random"], default="10")
    parser.add_argument("--repeat", type=int, default=3, help="CPU runs per config (best kept)")
    parser.add_argument("--only", help="pattern/order/maxActive, e.g. dfs/pre/1")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--yields", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.repeat, args.yields)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        root = Path(tmp)
        data = root / "tree.json"
        data.write_text(json.dumps(make_tree(args.nodes, args.branching)), encoding="utf-8")
        size_mb = data.stat().st_size / 1e6
        print(
            f"engine alone, no-op driver: {args.nodes} nodes, branching {args.branching}, "
            f"data {size_mb:.1f} MB JSON; CPU best of {args.repeat}; "
            f"python {sys.version.split()[0]}"
        )
        print(
            f"targets: CPU <= {CPU_TARGET_US:g} us/unit (dfs, bfs); "
            f"dfs memory growth <= {MEMORY_TARGET_MB:g} MB\n"
        )
        header = (
            f"{'pattern':<8}{'order':<6}{'maxA':>5}{'units':>9}{'us/unit':>9}  {'cpu':<5}"
            f"{'traced MB':>10}{'RSS MB':>8}  mem"
        )
        print(header)
        print("-" * len(header))
        failures = 0
        for pattern, order, limit, yields in CONFIGS:
            if args.only and args.only != f"{pattern}/{order}/{limit}":
                continue
            label = f"{pattern}{'*' if yields else '':<8}"[:8]
            flow = root / f"{pattern}-{order}-{limit}.flow.yaml"
            flow.write_text(FLOW.format(pattern=pattern, order=order, limit=limit))
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(flow), "--repeat", str(args.repeat)]
                + (["--yields"] if yields else []),
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                last = (child.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{label}{order:<6}{limit:>5}  ERROR: {last}")
                failures += 1
                continue
            result = json.loads(child.stdout)
            per_unit = result["cpu_s"] / result["units"] * 1e6
            cpu_ok = per_unit <= CPU_TARGET_US
            traced = result["traced_bytes"] / 1e6
            rss = result["rss_bytes"] / 1e6 if result["rss_bytes"] is not None else float("nan")
            if pattern == "dfs":
                mem_ok = max(traced, rss) <= MEMORY_TARGET_MB
                mem = "pass" if mem_ok else "FAIL"
            else:
                mem_ok, mem = True, "(info)"
            failures += (not cpu_ok) + (not mem_ok)
            print(
                f"{label}{order:<6}{limit:>5}{result['units']:>9}{per_unit:>9.1f}  "
                f"{'pass' if cpu_ok else 'FAIL':<5}{traced:>10.1f}{rss:>8.1f}  {mem}"
            )
        print(
            "\n* the driver's wait() yields to the event loop once, as a real driver's does; "
            "the other\n  rows never let the loop run between a step's start and its end."
        )
        print(f"\n{'all targets met' if not failures else f'{failures} target(s) missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
