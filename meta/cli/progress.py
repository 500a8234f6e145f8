"""A live view of a run on a terminal: counts by state and the units running now."""

from __future__ import annotations

from collections import Counter
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from meta.engine.records import CONDITION, SectionRecord, UnitRecord

SHOWN_RUNNING = 8
SHOWN_CACHED = 20
"""Cache hits named one per line, the first of them; the rest are counted."""


class LiveProgress:
    def __init__(self, console: Console, flow: str) -> None:
        self._console = console
        self._flow = flow
        self._running: dict[str, UnitRecord] = {}
        self._counts: Counter[str] = Counter()
        self._live = Live(self._render(), console=console, refresh_per_second=8, transient=True)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._live.__exit__(kind, error, trace)

    def unit_started(self, record: UnitRecord) -> None:
        self._running[record.id] = record
        self._live.update(self._render())

    def unit_finished(self, record: UnitRecord) -> None:
        self._running.pop(record.id, None)
        if record.retrying:
            # An attempt that failed and is tried again: a retry, not a failed unit.
            self._counts["retried"] += 1
            self._console.print(
                f"[yellow]retrying[/yellow] {record.id}: attempt {record.attempts} {record.reason}"
            )
        else:
            self._counts["resumed" if record.resumed else record.state] += 1
        if record.state == "failed" and not record.resumed and not record.retrying:
            self._console.print(f"[red]failed[/red] {record.id}: {record.reason}")
        elif record.state == "skipped" and not record.resumed:
            why = "its when was false" if record.reason == CONDITION else record.reason
            self._console.print(f"[dim]skipped[/dim] {record.id}: {why}")
        if record.cached_from and not record.resumed and self._counts["cached"] <= SHOWN_CACHED:
            self._console.print(f"[cyan]cached[/cyan] {record.id}: from {record.cached_from}")
        self._live.update(self._render())

    def section_finished(self, record: SectionRecord) -> None:
        pass

    def _render(self) -> Group:
        counts = (
            ", ".join(f"{n} {state}" for state, n in sorted(self._counts.items())) or "starting"
        )
        head = Text.assemble((f"{self._flow}: ", "bold"), f"{len(self._running)} running, {counts}")
        table = Table.grid(padding=(0, 2))
        for record in list(self._running.values())[:SHOWN_RUNNING]:
            retry = f" (attempt {record.attempts})" if record.attempts > 1 else ""
            table.add_row(Text("●", style="yellow"), Text(record.id + retry))
        if len(self._running) > SHOWN_RUNNING:
            table.add_row("", Text(f"… and {len(self._running) - SHOWN_RUNNING} more"))
        return Group(head, table)
