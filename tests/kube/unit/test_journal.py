"""The ConfigMap journal: batches in chunks, read back whole by the next operator session."""

from __future__ import annotations

import asyncio
import time

import pytest

from meta.engine.records import UnitRecord
from meta.kube.controller import journal as journal_module
from meta.kube.controller.journal import ConfigMapJournal, chunk_name
from meta.kube.layout import pod_name
from meta.kube.types import FlowOwner
from tests.kube.unit.fakes import FakeApi

OWNER = FlowOwner("team", "flow", "uid-1")


def record(n: int) -> UnitRecord:
    return UnitRecord(f"flow/s/u{n}", f"u{n}", "flow/s", "macro", "succeeded", 1, time.time())


def session(api: FakeApi, numbers: range) -> set[str]:
    async def go() -> set[str]:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        known = set(journal.finished())
        for n in numbers:
            journal.record_finished(record(n))
            await journal.flush()
        await journal.close()
        return known

    return asyncio.run(go())


def test_a_later_session_reads_every_chunk_and_overwrites_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(journal_module, "CHUNK_BYTES", 300)
    api = FakeApi()
    assert session(api, range(0, 8)) == set()
    assert len(api.config_maps) >= 3, "the records filled several chunks"
    assert session(api, range(8, 12)) == {f"flow/s/u{n}" for n in range(8)}
    assert session(api, range(12, 13)) == {f"flow/s/u{n}" for n in range(12)}


def test_long_names_that_share_a_prefix_get_objects_of_their_own() -> None:
    one = FlowOwner("team", "a" * 39 + "-segment-one", "u1")
    two = FlowOwner("team", "a" * 39 + "-segment-two", "u2")
    assert chunk_name(one, 0) != chunk_name(two, 0)
    assert pod_name(one, "x", 1) != pod_name(two, "x", 1)
    assert len(pod_name(one, "x", 1)) <= 63
