"""How soon `meta` is ready: `meta --version`, and `meta run` of a one-step flow to its step.

Each figure is the median of `--repeat` runs of the real `meta` command (a new process each
time). `meta --version` is timed from before its exec to its exit. For `meta run`, the flow's
only step writes the clock (`date +%s.%N`) to a file as its first act: time to first step is
that stamp minus the time taken just before `meta` was exec'd (the step's own `sh` and `date`
start-ups, ~2 ms, are included). The whole run, to `meta`'s exit, is shown beside it.

`meta` runs as an installed package does: with its modules' bytecode cached (a
PYTHONDONTWRITEBYTECODE in this environment is dropped for it, and one run before the timed
ones writes the caches), else every start compiles the sources again.

Issue 17's target: both under 0.15 s.

    python benchmarks/bench_startup.py [--repeat 11] [--meta PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import machine

TARGET_SECONDS = 0.15
ENVIRON = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {{name: startup}}
spec:
  root:
    name: first
    scope: macro
    pattern: dag
    units:
      - name: stamp
        run: {{command: [sh, -c, "date +%s.%N > {stamp}"]}}
"""


def children_cpu() -> float:
    """CPU seconds (user and system) of the processes this one started and waited for: less
    sensitive than wall time to what else the machine runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def version_seconds(meta: str) -> tuple[float, float]:
    """Wall and CPU seconds of `meta --version`."""
    cpu, started = children_cpu(), time.time()
    subprocess.run([meta, "--version"], check=True, stdout=subprocess.DEVNULL, env=ENVIRON)
    return time.time() - started, children_cpu() - cpu


def run_seconds(meta: str, flow: Path, workdir: Path, stamp: Path) -> tuple[float, float, float]:
    """Time to the step's stamp, to `meta`'s exit, and the CPU time of the whole run."""
    stamp.unlink(missing_ok=True)
    cpu, started = children_cpu(), time.time()
    subprocess.run(
        [meta, "run", str(flow), "--workdir", str(workdir)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=ENVIRON,
    )
    ended = time.time()
    return float(stamp.read_text()) - started, ended - started, children_cpu() - cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=11)
    # The `meta` of this Python's environment (a venv's python run without activating it).
    beside = Path(sys.executable).parent / "meta"
    found = str(beside) if beside.exists() else shutil.which("meta") or "meta"
    parser.add_argument("--meta", default=found, help="the command [default: %(default)s]")
    args = parser.parse_args(argv)
    print(f"machine: {machine.describe()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        stamp = tmp / "stamp"
        flow = tmp / "startup.flow.yaml"
        flow.write_text(FLOW.format(stamp=stamp), encoding="utf-8")
        # One run first, not counted: the first read of every module from disk.
        run_seconds(args.meta, flow, tmp / "warm", stamp)
        versions, version_cpus, firsts, wholes, cpus = [], [], [], [], []
        for attempt in range(args.repeat):
            wall, cpu = version_seconds(args.meta)
            versions.append(wall)
            version_cpus.append(cpu)
            first, whole, cpu = run_seconds(args.meta, flow, tmp / f"run-{attempt}", stamp)
            firsts.append(first)
            wholes.append(whole)
            cpus.append(cpu)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"`{args.meta}`, median of {args.repeat} (min-max)")
    rows = [
        ("meta --version", versions, True),
        ("meta run: exec to first step's start", firsts, True),
        ("meta run: exec to exit (one `sh` step)", wholes, False),
        ("meta --version: CPU (user + system)", version_cpus, False),
        ("meta run: CPU, whole run (with the step's)", cpus, False),
    ]
    for title, values, judged in rows:
        median = statistics.median(values)
        verdict = (
            f"< {TARGET_SECONDS}: {'pass' if median < TARGET_SECONDS else 'FAIL'}" if judged else ""
        )
        print(f"{title:<42}{median:>7.3f} s  ({min(values):.3f}-{max(values):.3f})  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
