"""meta.flow.validity: a document the schema found valid is not checked again; nothing else is
remembered."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from meta.flow import validity

STEP = {"name": "a", "run": {"command": ["true"]}}


def doc(**root: Any) -> dict[str, Any]:
    return {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaFlow",
        "metadata": {"name": "t"},
        "spec": {"root": {"name": "s", "scope": "macro", "pattern": "dag", **root}},
    }


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("META_CACHE_DIR", str(tmp_path))
    return tmp_path / validity.FOLDER


def listed(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_a_valid_document_is_remembered_and_then_not_checked(
    marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = doc(units=[STEP])
    assert validity.schema_faults(document, "f.yaml") == []
    assert len(listed(marks)) == 1

    def checked(document: Any, file: str) -> list[Any]:
        raise AssertionError("checked again")

    monkeypatch.setattr("meta.flow.schema.schema_faults", checked)
    assert validity.schema_faults(document, "f.yaml") == []
    # The order of keys changes no verdict: the same document written otherwise is known too.
    reordered = dict(reversed(list(doc(units=[STEP]).items())))
    assert validity.schema_faults(reordered, "f.yaml") == []


def test_a_document_with_faults_is_checked_every_time(marks: Path) -> None:
    document = doc(units=[STEP], steps=[])
    for _ in range(2):
        found = validity.schema_faults(document, "f.yaml")
        assert [(f.pointer, f.file) for f in found] == [("/spec/root/steps", "f.yaml")]
    assert listed(marks) == []


def test_a_document_that_is_not_plain_json_is_never_remembered(marks: Path) -> None:
    # An integer key would be written as the text "1": another document, whose verdict may
    # differ. It is checked, whatever the verdict, and not remembered.
    document = doc(units=[STEP])
    document["metadata"]["annotations"] = {1: "x"}
    validity.schema_faults(document, "f.yaml")
    assert listed(marks) == []
    document["metadata"]["annotations"] = {"1": "x"}
    assert validity.schema_faults(document, "f.yaml") == []
    assert len(listed(marks)) == 1


def test_an_unwritable_cache_only_means_checking_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("META_CACHE_DIR", str(blocker))
    assert validity.schema_faults(doc(units=[STEP]), "f.yaml") == []
    assert validity.schema_faults(doc(units=[STEP], steps=[]), "f.yaml") != []


def test_the_remembered_documents_are_bounded_and_the_oldest_forgotten(
    marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validity, "KEPT", 10)
    for index in range(11):
        document = doc(units=[{**STEP, "name": f"s{index}"}])
        assert validity.schema_faults(document, "f.yaml") == []
        if index == 0:
            os.utime(marks / listed(marks)[0], ns=(0, 0))
            first = listed(marks)[0]
    assert len(listed(marks)) == 5, "past KEPT, the oldest half is forgotten"
    assert first not in listed(marks)


def test_a_mark_another_user_made_is_not_trusted(
    marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = doc(units=[STEP], steps=[])
    marks.mkdir(parents=True)
    # Planted by someone who could write to the folder: a document with faults named valid.
    mark = validity._mark(document)
    assert mark is not None
    Path(mark).touch()
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(mark).st_uid + 1)
    found = validity.schema_faults(document, "f.yaml")
    assert [f.pointer for f in found] == ["/spec/root/steps"]
