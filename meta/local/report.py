"""The run report: every unit's last record with every attempt it made, and every section's
bounds, as one JSON document."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from meta.engine.records import (
    ATTEMPT_ENDS,
    Listener,
    SectionRecord,
    UnitRecord,
    add_attempt,
)

FINISHED = ("succeeded", "cached")
"""The states of a unit whose outputs are in the store."""


class ReportBuilder:
    """A listener that keeps the last record of every unit, every attempt it made (those of
    earlier sessions of the run given as `history`), and every section's figures."""

    def __init__(self, history: Mapping[str, list[dict[str, Any]]] | None = None) -> None:
        self.units: dict[str, UnitRecord] = {}
        self.sections: list[SectionRecord] = []
        self.attempts: dict[str, list[dict[str, Any]]] = {
            uid: list(attempts) for uid, attempts in (history or {}).items()
        }

    def unit_started(self, record: UnitRecord) -> None:
        self.units[record.id] = record

    def unit_finished(self, record: UnitRecord) -> None:
        self.units[record.id] = record
        if not record.resumed and record.state in ATTEMPT_ENDS:
            add_attempt(self.attempts.setdefault(record.id, []), record)

    def section_finished(self, record: SectionRecord) -> None:
        self.sections.append(record)

    def build(
        self,
        *,
        flow: str,
        state: str,
        started_at: float,
        finished_at: float,
        outputs: str | None,
        result: Any,
        outputs_of: Callable[[str], str],
        bytes_persisted: int,
        bytes_staged: int,
        error: dict[str, Any] | None,
    ) -> dict[str, Any]:
        report: dict[str, Any] = {
            "flow": flow,
            "state": state,
            "startedAt": started_at,
            "finishedAt": finished_at,
            "outputs": outputs,
            "result": result,
            "units": [
                _unit(record, outputs_of, self.attempts.get(record.id, []))
                for record in self.units.values()
            ],
            "sections": [
                {
                    "id": s.id,
                    "name": s.name,
                    "pattern": s.pattern,
                    "scope": s.scope,
                    "maxActive": s.max_active,
                    "peakActive": s.peak_active,
                    "unitsRun": s.units_run,
                    "state": s.state,
                }
                for s in self.sections
            ],
            "bytesPersisted": bytes_persisted,
            "bytesStaged": bytes_staged,
        }
        if error is not None:
            report["error"] = error
        return report


def _unit(
    record: UnitRecord, outputs_of: Callable[[str], str], attempts: list[dict[str, Any]]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "section": record.section,
        "scope": record.scope,
        "state": record.state,
        "attempts": record.attempts,
        "startedAt": record.started_at,
        "finishedAt": record.finished_at,
        "exitCode": record.exit_code,
        "outputs": kept(outputs_of(record.id)) if record.state in FINISHED else None,
    }
    if attempts:
        entry["history"] = attempts
    if record.cached_from:
        entry["cachedFrom"] = record.cached_from
    if record.result is not None:
        entry["result"] = record.result
    if record.resumed:
        entry["resumed"] = True
    if record.state not in FINISHED and record.reason:
        entry["reason"] = record.reason
        entry["stderrTail"] = record.stderr_tail
    return entry


def kept(outputs: str) -> str | None:
    """The outputs folder, or None for a unit that wrote no outputs (it has no folder)."""
    return outputs if os.path.isdir(outputs) else None


class Listeners:
    """Tells every listener in turn."""

    def __init__(self, listeners: Sequence[Listener]) -> None:
        self._listeners = tuple(listeners)

    def unit_started(self, record: UnitRecord) -> None:
        for listener in self._listeners:
            listener.unit_started(record)

    def unit_finished(self, record: UnitRecord) -> None:
        for listener in self._listeners:
            listener.unit_finished(record)

    def section_finished(self, record: SectionRecord) -> None:
        for listener in self._listeners:
            listener.section_finished(record)


def write_json(path: Path, document: Any) -> None:
    """Write a JSON file whole or not at all."""
    # Compact: json's indenting encoder is pure Python, and a report may list 100,000 units.
    write_text(path, json.dumps(document, separators=(",", ":")) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write a file whole or not at all: a reader never sees it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A new file of its own (O_EXCL, a name no one chose), so writing it clobbers nothing that
    # happens to be at a fixed name such as `PATH.partial`.
    descriptor, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            # mkstemp makes it 0600; the file gets the mode a plain open() would give it.
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(text)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def _umask() -> int:
    """The process's umask, read without setting it (os.umask sets it, for every thread)."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
