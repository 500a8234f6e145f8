"""The live view names cache hits with the run they came from (the first of them), and counts
every one."""

from __future__ import annotations

import io

from rich.console import Console

from meta.cli.progress import SHOWN_CACHED, LiveProgress
from meta.engine.records import UnitRecord


def hit(n: int) -> UnitRecord:
    return UnitRecord(f"f/s{n}", f"s{n}", "f", "macro", "cached", 0, 0.0, 0.0, cached_from="runs/a")


def test_cache_hits_are_named_with_their_source_run_and_counted() -> None:
    out = io.StringIO()
    live = LiveProgress(Console(file=out, width=120, color_system=None), "f")
    with live:
        for n in range(SHOWN_CACHED + 5):
            live.unit_finished(hit(n))
    printed = out.getvalue()
    assert "cached f/s0: from runs/a" in printed
    assert printed.count(": from runs/a") == SHOWN_CACHED, "the first are named, the rest counted"
    assert dict(live._counts) == {"cached": SHOWN_CACHED + 5}
