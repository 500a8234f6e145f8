"""The ConfigMap journal: batches in chunks, read back whole by the next operator session."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

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


def test_results_and_skipped_units_come_back_and_big_bursts_are_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(journal_module, "CHUNK_BYTES", 2000)
    api = FakeApi()
    big = "x" * 900

    async def first() -> None:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        for n in range(4):
            journal.record_finished(replace(record(n), result={"n": n, "pad": big}))
        journal.record_finished(replace(record(9), state="skipped", reason="condition"))
        await journal.close()

    asyncio.run(first())
    keys = [key for body in api.config_maps.values() for key in body.get("data", {})]
    assert len(keys) >= 3, "one burst of big records went out as several keys"
    assert all(
        len(text) <= 2000 + 1000
        for body in api.config_maps.values()
        for text in body["data"].values()
    )

    async def second() -> dict[str, UnitRecord]:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        return dict(journal.finished())

    found = asyncio.run(second())
    assert [found[f"flow/s/u{n}"].result for n in range(4)] == [
        {"n": n, "pad": big} for n in range(4)
    ]
    assert (found["flow/s/u9"].state, found["flow/s/u9"].resumed) == ("skipped", True)


def test_a_result_too_big_for_a_config_map_is_left_out_of_its_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(journal_module, "CHUNK_BYTES", 2000)
    api = FakeApi()

    async def go() -> dict[str, UnitRecord]:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        journal.record_finished(replace(record(1), result="y" * 5000))
        journal.record_finished(record(2))
        await journal.close()
        again = ConfigMapJournal(api, OWNER)
        await again.load()
        return dict(again.finished())

    found = asyncio.run(go())
    assert sorted(found) == ["flow/s/u1", "flow/s/u2"]
    assert found["flow/s/u1"].result is None
