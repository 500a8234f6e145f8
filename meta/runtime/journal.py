"""The journal: an append-only record of a run's progress in its workdir.

Each record is one JSON line, written with a single `write` on an O_APPEND descriptor before the
engine goes on, so a `kill -9` at any moment loses nothing already recorded. A background thread
fsyncs the file as records arrive (group commit): durability against a machine crash follows
within one fsync, without making every unit wait for the disk.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path
from typing import Any

from meta.engine.records import UnitRecord

JOURNAL = "journal.jsonl"
RECORD_FIELDS = tuple(field.name for field in dataclass_fields(UnitRecord))


class FileJournal:
    def __init__(self, workdir: Path) -> None:
        self.path = workdir / JOURNAL
        self._finished = _replay(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._dirty = threading.Condition()
        self._pending = False
        self._closing = False
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._syncer.start()

    def finished(self) -> Mapping[str, UnitRecord]:
        """Units that succeeded in earlier sessions of this run, by id."""
        return self._finished

    def record_session(self, **fields: Any) -> None:
        self._append({"event": "session", **fields})

    def record_started(self, record: UnitRecord) -> None:
        self._append(
            {
                "event": "started",
                "id": record.id,
                "attempt": record.attempts,
                "at": record.started_at,
            }
        )

    def record_finished(self, record: UnitRecord) -> None:
        # Field by field: dataclasses.asdict deep-copies, and this runs once per unit.
        fields = {name: getattr(record, name) for name in RECORD_FIELDS}
        self._append({"event": "finished", **fields})

    def _append(self, entry: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
        with self._dirty:
            self._pending = True
            self._dirty.notify()

    def _sync_loop(self) -> None:
        while True:
            with self._dirty:
                while not self._pending and not self._closing:
                    self._dirty.wait()
                if not self._pending and self._closing:
                    return
                self._pending = False
            os.fsync(self._fd)

    def close(self) -> None:
        with self._dirty:
            self._closing = True
            self._dirty.notify()
        self._syncer.join()
        os.fsync(self._fd)
        os.close(self._fd)


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
    for line in whole.splitlines():
        entry = json.loads(line)
        if entry.get("event") != "finished":
            continue
        entry.pop("event")
        record = UnitRecord(**entry)
        if record.state == "succeeded":
            finished[record.id] = record
        else:
            finished.pop(record.id, None)
    return {uid: _as_resumed(record) for uid, record in finished.items()}


def _as_resumed(record: UnitRecord) -> UnitRecord:
    return replace(record, resumed=True)
