"""The journal: an append-only record of a run's progress in its workdir.

Each record is one JSON line on an O_APPEND descriptor, written as it is made (one small write
to the page cache, which a `kill -9` of the process does not lose); a thread fsyncs them within
SYNC_WINDOW (group commit: one flush of the disk for a burst of records), so no unit waits for
the disk, and no record waits for a thread. A unit counts as finished once its record is in the
file: a crash of the machine may lose the records of the last SYNC_WINDOW, and those units run
again on resume, but a unit on record is never run again. Records are written in the order
they were made, so a consumer is never on record before the producer it read from.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path
from typing import Any

from meta.engine.records import UnitRecord
from meta.errors import Fault, UserError
from meta.flow.files import display_path

JOURNAL = "journal.jsonl"
SYNC_WINDOW = 0.01
"""The most a record waits for its fsync; the write itself is never held back."""
RECORD_FIELDS = tuple(field.name for field in dataclass_fields(UnitRecord))


class FileJournal:
    def __init__(self, workdir: Path) -> None:
        self.path = workdir / JOURNAL
        self._finished = _replay(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._ready = threading.Condition()
        self._durable = False
        """Records were written that no fsync has covered yet."""
        self._closing = False
        self._failure: OSError | None = None
        self._writer = threading.Thread(target=self._sync_loop, name="journal", daemon=True)
        self._writer.start()

    def finished(self) -> Mapping[str, UnitRecord]:
        """Units that succeeded in earlier sessions of this run, by id."""
        return self._finished

    def record_session(self, **fields: Any) -> None:
        self._append({"event": "session", **fields})

    def record_started(self, record: UnitRecord) -> None:
        # Not waited on for the disk: a start lost in a crash changes nothing on resume.
        entry = {"event": "started", "id": record.id, "attempt": record.attempts}
        self._append({**entry, "at": record.started_at}, durable=False)

    def record_finished(self, record: UnitRecord) -> None:
        # Field by field: dataclasses.asdict deep-copies, and this runs once per unit.
        fields = {name: getattr(record, name) for name in RECORD_FIELDS}
        self._append({"event": "finished", **fields})

    def _append(self, entry: dict[str, Any], *, durable: bool = True) -> None:
        if self._failure is not None:
            raise self._failure
        data = memoryview((json.dumps(entry, separators=(",", ":")) + "\n").encode())
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            # A journal that cannot be written must stop the run, not let it go on unrecorded.
            self._failure = exc
            raise
        if durable:
            with self._ready:
                if not self._durable:
                    self._durable = True
                    self._ready.notify()

    def _sync_loop(self) -> None:
        """fsync what was written, at most once per SYNC_WINDOW: the records made while one
        window passes share one flush of the disk."""
        last_sync = 0.0
        while True:
            with self._ready:
                while not self._durable and not self._closing:
                    self._ready.wait()
                closing = self._closing
            wait = last_sync + SYNC_WINDOW - time.monotonic()
            if wait > 0 and not closing:
                time.sleep(wait)
            with self._ready:
                self._durable = False
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._failure = exc
                return
            last_sync = time.monotonic()
            if closing:
                return

    def close(self) -> None:
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._writer.join()
        os.close(self._fd)
        if self._failure is not None:
            raise self._failure


def _replay(path: Path) -> dict[str, UnitRecord]:
    """The succeeded units on record; a line torn by a kill is cut off so appends stay whole."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(whole))
    finished: dict[str, UnitRecord] = {}
    for number, line in enumerate(whole.splitlines(), start=1):
        try:
            entry = json.loads(line)
            if entry.get("event") != "finished":
                continue
            entry.pop("event")
            record = UnitRecord(**entry)
        except (ValueError, TypeError, AttributeError) as exc:
            raise UserError(
                Fault(display_path(path), f"/{number - 1}", f"line {number} is not a record: {exc}")
            ) from None
        if record.state == "succeeded":
            finished[record.id] = record
        else:
            finished.pop(record.id, None)
    return {uid: _as_resumed(record) for uid, record in finished.items()}


def _as_resumed(record: UnitRecord) -> UnitRecord:
    return replace(record, resumed=True)
