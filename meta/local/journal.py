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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path
from typing import Any

from meta.engine.records import ATTEMPT_ENDS, UnitRecord, attempt_entry, finished_for_good
from meta.errors import Fault, UserError
from meta.flow.files import display_path
from meta.flow.reading import read_regular_bytes
from meta.trees import Manifest, OutputRefused, measure_tree

JOURNAL = "journal.jsonl"
SYNC_WINDOW = 0.05
"""The most a record waits for its fsync; the write itself is never held back. No one waits for
the fsync, so the window trades only what a machine crash may lose against the flushes' cost
(a window of 10 ms cost a run of short steps ~5% more CPU a step: benchmarks/README.md)."""
OUTPUTS = "outputs"
"""The field of a `finished` line holding the manifest of what the unit kept (null: nothing)."""
FINISHED = ("succeeded", "cached")
"""The states of a unit that is not run again on resume."""
RECORD_FIELDS = tuple(field.name for field in dataclass_fields(UnitRecord))
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""`json.dumps` with these separators, without building an encoder for every record."""
_STRING = json.encoder.encode_basestring_ascii
"""How `_ENCODE` writes a str (ensure_ascii)."""
_INFINITY = float("inf")
_FINISHED_KEYS = tuple((f',"{name}":', name) for name in RECORD_FIELDS)
"""Each field of a `finished` line: its key as written, and its name."""


class FileJournal:
    """The journal of one workdir. `kept(uid)` is what a step that succeeded kept in the
    store (its manifest, taken once), recorded with it; `stored(uid)` is where the store keeps
    it, measured again on resume before a unit on record is taken as finished."""

    def __init__(
        self,
        workdir: Path,
        kept: Callable[[str], Manifest | None],
        stored: Callable[[str], str],
    ) -> None:
        self.path = workdir / JOURNAL
        self._kept = kept
        finished, manifests, self._history, self._attempts_made = _replay(self.path)
        self._finished = _Verified(finished, manifests, stored)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._ready = threading.Condition()
        self._durable = False
        """Records were written that no fsync has covered yet."""
        self._closing = False
        self._failure: OSError | None = None
        self._writer = threading.Thread(target=self._sync_loop, name="journal", daemon=True)
        self._writer.start()

    def finished(self) -> Mapping[str, UnitRecord]:
        """Units that finished (succeeded, or were skipped) in earlier sessions of this run and
        whose outputs are in the store as they were kept, by id (checked as each is asked
        for)."""
        return self._finished

    def history(self) -> Mapping[str, list[dict[str, Any]]]:
        """Every attempt that ended in earlier sessions of this run, per unit, oldest first."""
        return self._history

    def attempts_made(self, uid: str) -> int:
        return self._attempts_made.get(uid, 0)

    def rerun(self) -> list[tuple[str, str]]:
        """Units on record that run again, and why: their outputs went missing or changed."""
        return list(self._finished.lost.items())

    def record_session(self, **fields: Any) -> None:
        self._append({"event": "session", **fields})

    def record_started(self, record: UnitRecord) -> None:
        # Not waited on for the disk: a start lost in a crash changes nothing on resume.
        line = (
            f'{{"event":"started","id":{_json(record.id)},"attempt":{_json(record.attempts)},'
            f'"at":{_json(record.started_at)}}}'
        )
        self._write(line, durable=False)

    def record_finished(self, record: UnitRecord) -> None:
        # Written field by field, each value as json.dumps writes it: the same line as
        # dumping a dict of the fields, without building that dict (this runs once per unit).
        parts = ['{"event":"finished"']
        for key, name in _FINISHED_KEYS:
            parts += (key, _json(getattr(record, name)))
        if record.state in FINISHED:
            manifest = self._kept(record.id)
            parts += (f',"{OUTPUTS}":', "null" if manifest is None else _ENCODE(manifest.as_json()))
        parts.append("}")
        self._write("".join(parts))

    def _append(self, entry: dict[str, Any], *, durable: bool = True) -> None:
        self._write(_ENCODE(entry), durable=durable)

    def _write(self, line: str, *, durable: bool = True) -> None:
        if self._failure is not None:
            raise self._failure
        data = memoryview((line + "\n").encode())
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
                wait = last_sync + SYNC_WINDOW - time.monotonic()
                if wait > 0 and not self._closing:
                    # The rest of the window; `close` cuts it short: a run's end does not
                    # wait for the window to pass (writes do not: they find `_durable` set).
                    self._ready.wait(wait)
                closing = self._closing
                self._durable = False
            try:
                os.fsync(self._fd)
                if os.fstat(self._fd).st_nlink == 0:
                    # The workdir was removed: what goes on is recorded nowhere, so the next
                    # record stops the run.
                    self._failure = self._deleted()
                    return
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
        try:
            deleted = os.fstat(self._fd).st_nlink == 0
        finally:
            os.close(self._fd)
        if self._failure is None and deleted:
            # Written to the end, but into a file nobody can open: the run is not on record.
            self._failure = self._deleted()
        if self._failure is not None:
            raise self._failure

    @property
    def lost(self) -> bool:
        """Whether the journal's file was deleted (its workdir removed) while the run went on."""
        return isinstance(self._failure, JournalLost)

    def _deleted(self) -> JournalLost:
        return JournalLost(f"{self.path} was deleted while the run went on")


class JournalLost(OSError):
    """The journal's file is gone: the run is on record nowhere."""


class _Verified(Mapping[str, UnitRecord]):
    """The units on record, each taken as finished only when the store holds what it kept:
    a unit whose outputs were removed or changed since runs again, and is listed in `lost`."""

    def __init__(
        self,
        records: dict[str, UnitRecord],
        manifests: dict[str, Manifest | None],
        stored: Callable[[str], str],
    ) -> None:
        self._records = records
        self._manifests = manifests
        self._stored = stored
        self.lost: dict[str, str] = {}

    def __getitem__(self, uid: str) -> UnitRecord:
        record = self._records[uid]
        if uid in self._manifests:
            problem = _changed(self._stored(uid), self._manifests.pop(uid))
            if problem is not None:
                del self._records[uid]
                self.lost[uid] = problem
                raise KeyError(uid)
        return record

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)


def _json(value: Any) -> str:
    """`value` as `_ENCODE` writes it, the common kinds of a record's fields without the
    encoder's own set-up per call."""
    kind = value.__class__
    if kind is str:
        return _STRING(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is float and -_INFINITY < value < _INFINITY:  # not inf, not nan
        return float.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    return _ENCODE(value)


def _changed(folder: str, manifest: Manifest | None) -> str | None:
    """What is wrong with a unit's outputs in the store, or None when they are as kept."""
    try:
        found: Manifest | None = measure_tree(folder)
    except FileNotFoundError:
        found = None
    except (OSError, OutputRefused):
        return "its outputs in the store cannot be read"
    if manifest is None:
        return None if found is None else "its store folder holds outputs it did not write"
    if found is None:
        return "its outputs are missing from the store"
    if found != manifest:
        return (
            f"its outputs in the store changed ({found.files} files, {found.bytes} bytes; "
            f"kept: {manifest.files} files, {manifest.bytes} bytes)"
        )
    return None


def _replay(
    path: Path,
) -> tuple[
    dict[str, UnitRecord],
    dict[str, Manifest | None],
    dict[str, list[dict[str, Any]]],
    dict[str, int],
]:
    """The units on record as finished for good (see `finished_for_good`), what each kept
    (when its line says; a line without `outputs` is not checked), every attempt that ended,
    per unit, and the highest attempt number each started (an attempt a kill cut short has a
    start and no end); a line torn by a kill is cut off so appends stay whole."""
    try:
        data = read_regular_bytes(path)
    except FileNotFoundError:
        return {}, {}, {}, {}
    except OSError as exc:
        raise UserError(Fault(display_path(path), "", f"unreadable: {exc}")) from None
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(whole))
    finished: dict[str, UnitRecord] = {}
    manifests: dict[str, Manifest | None] = {}
    history: dict[str, list[dict[str, Any]]] = {}
    attempts_made: dict[str, int] = {}
    for number, line in enumerate(whole.splitlines(), start=1):
        try:
            entry = json.loads(line)
            if entry.get("event") == "started":
                uid, attempt = str(entry["id"]), int(entry["attempt"])
                attempts_made[uid] = max(attempts_made.get(uid, 0), attempt)
            if entry.get("event") != "finished":
                continue
            entry.pop("event")
            has_manifest = OUTPUTS in entry
            manifest = Manifest.from_json(entry.pop(OUTPUTS, None))
            record = UnitRecord(**entry)
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
            raise UserError(
                Fault(display_path(path), f"/{number - 1}", f"line {number} is not a record: {exc}")
            ) from None
        manifests.pop(record.id, None)
        attempts_made[record.id] = max(attempts_made.get(record.id, 0), record.attempts)
        if record.state in ATTEMPT_ENDS:
            history.setdefault(record.id, []).append(attempt_entry(record))
        if finished_for_good(record.state, record.reason):
            finished[record.id] = record
            if has_manifest:
                manifests[record.id] = manifest
        else:
            finished.pop(record.id, None)
    resumed = {uid: _as_resumed(record) for uid, record in finished.items()}
    return resumed, manifests, history, attempts_made


def _as_resumed(record: UnitRecord) -> UnitRecord:
    return replace(record, resumed=True)
