"""What a runner's own work per step costs against the plain floor, by how the runner is built.

`bench_local.py` compares `meta run` with a plain floor (a ThreadPoolExecutor(2) running
`subprocess.run(["true", name])`, each node submitted from the done-callback of the one it waits
for). This script answers the question its figures raise: how much work per step can a runner
do beside starting the step, and stay within issue 17's 1.3x of that floor? It runs the same
walk (`bench_local.make_tree`, dfs pre-order, 2 at a time; and `make_chain`) with a synthetic
`--work` of W microseconds per step (Python with a system call every few microseconds, the mix
of a runtime's bookkeeping; half before the step starts, half after it ends), in two designs:

- `loop`: one thread, as meta's local driver: it starts each step with `subprocess.Popen`,
  hears its end through a pidfd in an epoll set, reaps it, and does the step's work between;
- `threads`: the floor with the work added: each step's work runs on the pool thread that runs
  the step (the interpreter lock shared, as it would be).

W = 0 in `threads` is the floor itself. Median of `--repeat` runs, interleaved; the ratio is to
the floor of the same shape. `bench_local.py` prints meta's own CPU time per step (`own cpu`),
which places meta among these rows.

    python benchmarks/bench_loop_model.py [--work 0,50,100,200,300,400] [--repeat 5]
                                          [--nodes 1000] [--chain 100]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import machine
from bench_local import (
    RATIO_TARGET,
    WORKERS,
    Node,
    _command,
    _links,
    floor,
    make_chain,
    make_tree,
    run_step,
)

STAT_EVERY = 16
"""Loop turns between two system calls of the synthetic work (~5 us on a 2.4 GHz core)."""


def work(seconds: float) -> None:
    """`seconds` of a runtime's kind of work: Python, with a system call every few microseconds
    (each releases the interpreter lock, as file and process calls do)."""
    if seconds <= 0:
        return
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        os.stat(".")
        for _ in range(STAT_EVERY):
            pass


def threads(root: Node, seconds: float) -> int:
    """The plain floor of bench_local.py, each step doing `seconds` of work on its thread."""

    def step(command: list[str]) -> None:
        work(seconds / 2)
        run_step(command)
        work(seconds / 2)

    return floor(root, "pre", step)


def loop(root: Node, seconds: float) -> int:
    """One thread starting every step, hearing ends through pidfds, doing each step's work."""
    epoll = select.epoll()
    running: dict[int, tuple[subprocess.Popen[bytes], Node]] = {}
    ready, count = [root], 0
    try:
        while ready or running:
            while ready and len(running) < WORKERS:
                node = ready.pop()
                work(seconds / 2)
                process = subprocess.Popen(_command(node))
                pidfd = os.pidfd_open(process.pid)
                epoll.register(pidfd, select.EPOLLIN)
                running[pidfd] = (process, node)
            for pidfd, _ in epoll.poll():
                epoll.unregister(pidfd)
                os.close(pidfd)
                process, node = running.pop(pidfd)
                if process.wait() != 0:
                    raise SystemExit(f"{_command(node)} failed")
                work(seconds / 2)
                count += 1
                ready.extend(reversed(node.get("children", [])))
    finally:
        epoll.close()
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="0,50,100,200,300,400", help="microseconds, a list")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=100)
    args = parser.parse_args(argv)
    works = [int(value) for value in args.work.split(",")]
    print(f"machine: {machine.describe()}", flush=True)
    shapes = {"tree": make_tree(args.nodes), "chain": make_chain(args.chain)}
    designs: dict[str, Callable[[Node, float], int]] = {"threads": threads, "loop": loop}
    for shape, root in shapes.items():
        nodes = len(_links(root)[0])
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeat):
            for micros in sorted({0, *works}):
                for name, runner in designs.items():
                    started = time.perf_counter()
                    if runner(root, micros / 1e6) != nodes:
                        raise SystemExit(f"{name} did not run every step")
                    times.setdefault((name, micros), []).append(time.perf_counter() - started)
        floor = statistics.median(times[("threads", 0)])
        print(
            f"\n{shape}: {nodes} `true` steps, {WORKERS} at a time; median of {args.repeat}; "
            f"floor {floor:.3f} s ({floor / nodes * 1e3:.2f} ms a step); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'work a step':>12}{'threads':>10}{'loop':>10}   (ratio to the floor)")
        for micros in works:
            ratios = [statistics.median(times[(name, micros)]) / floor for name in designs]
            cells = "".join(
                f"{ratio:>9.2f}{'*' if ratio > RATIO_TARGET else ' '}" for ratio in ratios
            )
            print(f"{micros:>9} us{cells}")
    print(f"\n*: over issue 17's {RATIO_TARGET}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
