"""The local journal read back on resume: what each unit already tried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meta.errors import UserError
from meta.local.journal import JOURNAL, FileJournal


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
