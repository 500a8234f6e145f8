"""What the benchmarks say of the machine they ran on, so that figures from different machines
can be set side by side. Not a benchmark itself (the Makefile runs bench_*.py)."""

from __future__ import annotations

import os
import sys
import time

REFERENCE_STEPS = 10_000_000


def reference_loop() -> float:
    """Seconds this Python takes for a plain loop of REFERENCE_STEPS additions (best of 3): the
    speed of one core for Python code, which hosts of one kind of machine differ in by 2x and
    more, and which start-up and per-step times follow."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for step in range(REFERENCE_STEPS):
            total += step
        best = min(best, time.perf_counter() - started)
    return best


def describe() -> str:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cores} cores, {memory:.0f} GiB, python {sys.version.split()[0]}, "
        f"{os.uname().release}, load average {os.getloadavg()[0]:.1f}; "
        f"a {REFERENCE_STEPS:,}-step Python loop takes {reference_loop():.2f} s"
    )
