"""The journal's lines read as the JSON of their records: each field as `json.dumps` writes it
(lines are written field by field, not dumped from a dict)."""

from __future__ import annotations

import json
from pathlib import Path

from meta.engine.records import UnitRecord
from meta.local.journal import FileJournal
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
