"""Issue 13, item 18: the live view shows a step that succeeds on its third attempt as two
retries and one success, not as two failed units."""

from __future__ import annotations

import io

from rich.console import Console

from meta.cli.progress import LiveProgress
from meta.engine.records import UnitRecord


def test_retries_are_shown_as_retries() -> None:
    out = io.StringIO()
    live = LiveProgress(Console(file=out, width=120, color_system=None), "f")
    for attempt in (1, 2, 3):
        started = UnitRecord("f/s", "s", "f", "macro", "running", attempt, 0.0)
        live.unit_started(started)
        if attempt < 3:
            live.unit_finished(
                UnitRecord(
                    "f/s",
                    "s",
                    "f",
                    "macro",
                    "failed",
                    attempt,
                    0.0,
                    1.0,
                    1,
                    "exited with code 1",
                    retrying=True,
                )
            )
    live.unit_finished(UnitRecord("f/s", "s", "f", "macro", "succeeded", 3, 0.0, 1.0, 0))
    printed = out.getvalue()
    assert "failed" not in printed.replace("retrying f/s: attempt", "")
    assert printed.count("retrying f/s: attempt") == 2
    assert dict(live._counts) == {"retried": 2, "succeeded": 1}
