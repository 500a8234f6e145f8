"""The local journal: its lines read as the JSON of their records (each field as `json.dumps`
writes it: lines are written field by field, not dumped from a dict), and what a resumed run
reads back from it: what each unit already tried."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from meta.engine.records import UnitRecord
from meta.errors import UserError
from meta.local import journal as journal_module
from meta.local.journal import JOURNAL, FileJournal
from meta.trees import Manifest


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _dumped(entry: dict[str, object]) -> str:
    return json.dumps(entry, separators=(",", ":"))


def test_started_and_finished_lines_are_the_json_of_their_records(tmp_path: Path) -> None:
    kept = {'a/"q"/é': Manifest(files=2, bytes=7, digest="x")}
    journal = FileJournal(tmp_path, kept.get, lambda uid: str(tmp_path / uid))
    records = [
        UnitRecord('a/"q"/é', "é\n\t", "a", "macro", "running", 1, 1796585664.7254813),
        UnitRecord(
            'a/"q"/é',
            "é\n\t",
            "a",
            "macro",
            "succeeded",
            1,
            1796585664.7254813,
            17.0,
            0,
            result={"n": [1, 2.5, None, True], "s": "\u2603"},
        ),
        UnitRecord(
            "b",
            "b",
            "a",
            "micro",
            "failed",
            3,
            1.5,
            float("inf"),
            -9,
            "killed",
            "tail\x00",
            retrying=True,
        ),
        UnitRecord("c", "c", "a", "macro", "succeeded", 1, 2.0, 3.0, 0, resumed=True),
    ]
    journal.record_started(records[0])
    for record in records[1:]:
        journal.record_finished(record)
    journal.close()

    fields = [f for f in UnitRecord.__dataclass_fields__]
    expected = [
        _dumped({"event": "started", "id": 'a/"q"/é', "attempt": 1, "at": 1796585664.7254813})
    ]
    for record, outputs in zip(records[1:], [kept['a/"q"/é'], None, None], strict=True):
        entry: dict[str, object] = {"event": "finished"}
        entry.update({name: getattr(record, name) for name in fields})
        if record.state == "succeeded":
            entry["outputs"] = None if outputs is None else outputs.as_json()
        expected.append(_dumped(entry))
    assert _lines(tmp_path / "journal.jsonl") == expected


def _journal(workdir: Path, *entries: dict[str, object]) -> FileJournal:
    (workdir / JOURNAL).write_text("".join(json.dumps(e) + "\n" for e in entries))
    return FileJournal(workdir, kept=lambda uid: None, stored=lambda uid: str(workdir / uid))


def _finished(uid: str, attempt: int, state: str, **extra: object) -> dict[str, object]:
    record = {"id": uid, "name": uid, "section": "s", "scope": "macro", "state": state}
    return {"event": "finished", **record, "attempts": attempt, "started_at": 1.0, **extra}


def test_attempts_made_counts_an_attempt_a_kill_cut_short(tmp_path: Path) -> None:
    journal = _journal(
        tmp_path,
        {"event": "session", "pid": 1, "at": 0.0},
        {"event": "started", "id": "a", "attempt": 1, "at": 1.0},
        _finished("a", 1, "failed", retrying=True),
        {"event": "started", "id": "a", "attempt": 2, "at": 1.5},
        {"event": "started", "id": "b", "attempt": 1, "at": 1.0},
        _finished("b", 1, "succeeded"),
        _finished("c", 0, "skipped", reason="condition"),
    )
    try:
        assert [journal.attempts_made(uid) for uid in "abcd"] == [2, 1, 0, 0]
        assert [e["attempt"] for e in journal.history()["a"]] == [1]
    finally:
        journal.close()


def test_a_started_line_without_its_attempt_is_named(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_text('{"event": "started", "id": "a"}\n')
    with pytest.raises(UserError) as raised:
        FileJournal(tmp_path, kept=lambda uid: None, stored=lambda uid: str(tmp_path / uid))
    assert "line 1 is not a record" in str(raised.value)


def test_a_line_nested_too_deeply_to_read_is_named(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_text(
        '{"event": "finished", "result": ' + "[" * 5000 + "]" * 5000 + "}\n"
    )
    with pytest.raises(UserError) as raised:
        FileJournal(tmp_path, kept=lambda uid: None, stored=lambda uid: str(tmp_path / uid))
    assert "line 1 is not a record" in str(raised.value)


def test_records_are_written_in_the_order_they_were_made(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, kept=lambda uid: None, stored=lambda uid: str(tmp_path / uid))
    for number in range(2000):
        journal.record_started(UnitRecord(f"u{number}", "u", "s", "macro", "running", 1, 1.0))
    journal.close()
    ids = [json.loads(line)["id"] for line in _lines(tmp_path / JOURNAL)]
    assert ids == [f"u{number}" for number in range(2000)]


def test_a_journal_the_disk_refuses_refuses_every_record_after_and_fails_its_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = FileJournal(tmp_path, kept=lambda uid: None, stored=lambda uid: str(tmp_path / uid))
    record = UnitRecord("a", "a", "s", "macro", "running", 1, 1.0)
    journal.record_started(record)

    def full(descriptor: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(journal_module.os, "write", full)
        with pytest.raises(OSError) as refused:
            journal.record_started(record)
    assert refused.value.errno == errno.ENOSPC
    # The disk has room again, but a run that went unrecorded for a while must not go on.
    with pytest.raises(OSError):
        journal.record_started(record)
    with pytest.raises(OSError) as closed:
        journal.close()
    assert closed.value.errno == errno.ENOSPC
    assert _lines(tmp_path / JOURNAL) == ['{"event":"started","id":"a","attempt":1,"at":1.0}']
