"""The ConfigMap journal: batches in chunks, read back whole by the next operator session."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meta.engine.records import UnitRecord, UnitState
from meta.kube.controller import journal as journal_module
from meta.kube.controller.journal import (
    ConfigMapJournal,
    chunk_name,
    compact,
    drop_chunks,
    kept_name,
)
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


def test_a_chunk_costs_etcd_a_few_times_its_size_not_its_square(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """etcd keeps every patched chunk whole: records ending one by one, each seen by the
    flusher, must not each rewrite the chunk they join."""
    monkeypatch.setattr(journal_module, "FLUSH_SECONDS", 0)
    monkeypatch.setattr(journal_module, "MAX_HOLD_SECONDS", 1e9)
    api = FakeApi()
    stored: list[int] = []
    patch = api.patch_config_map

    async def counted(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        found = await patch(namespace, name, body)
        stored.append(sum(len(text) for text in found["data"].values()))
        return found

    monkeypatch.setattr(api, "patch_config_map", counted)

    async def go() -> None:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        for n in range(2000):
            journal.record_finished(record(n))
            for _ in range(3):
                await asyncio.sleep(0)
        await journal.close()

    asyncio.run(go())
    journal_bytes = sum(
        len(text) for body in api.config_maps.values() for text in body["data"].values()
    )
    assert len(api.config_maps) == 1
    assert sum(stored) <= (journal_module.REWRITE_FACTOR + 2) * journal_bytes


def test_closing_while_a_batch_is_on_its_way_loses_no_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API client's calls run in threads: cancelling the flusher does not stop the patch it
    sent. Here that patch lands after the one closing sends, as a slow request may; the
    record that ended meanwhile must still be in the journal."""
    monkeypatch.setattr(journal_module, "FLUSH_SECONDS", 0)
    api = FakeApi()
    patch = api.patch_config_map
    delays = [0.2]

    async def in_a_thread(namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        delay = delays.pop() if delays else 0.0

        async def lands() -> dict[str, Any]:
            await asyncio.sleep(delay)
            return await patch(namespace, name, body)

        return await asyncio.shield(asyncio.ensure_future(lands()))

    monkeypatch.setattr(api, "patch_config_map", in_a_thread)

    async def go() -> None:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        journal.record_finished(record(0))
        await journal.flush()
        journal.record_finished(record(1))
        await asyncio.sleep(0.05)
        journal.record_finished(record(2))
        await journal.close()
        await asyncio.sleep(0.3)

    asyncio.run(go())
    names = [
        json.loads(line)["name"]
        for body in api.config_maps.values()
        for key in sorted(body["data"])
        for line in body["data"][key].splitlines()
    ]
    assert sorted(names) == ["u0", "u1", "u2"]


def ended_journal(api: FakeApi, states: list[UnitState]) -> list[str]:
    async def go() -> list[str]:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        for n, state in enumerate(states):
            journal.record_finished(replace(record(n), state=state))
            await journal.flush()
        await journal.close()
        return journal.chunks

    return asyncio.run(go())


def test_compacting_moves_every_record_into_the_store_and_keeps_the_ones_worth_a_look(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(journal_module, "CHUNK_BYTES", 300)
    api = FakeApi()
    states: list[UnitState] = ["succeeded"] * 6
    chunks = ended_journal(api, [*states, "failed", "cancelled"])
    assert len(chunks) >= 3

    fields = asyncio.run(compact(api, OWNER, chunks, str(tmp_path)))
    compacted = fields["journalCompacted"]
    lines = (tmp_path / compacted["path"]).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"flow/s/u{n}" for n in range(8)]
    assert (compacted["units"], compacted["kept"]) == (8, 2)
    assert fields["journal"] == [kept_name(OWNER)]
    kept = api.config_maps[("team", kept_name(OWNER))]["data"]
    assert [json.loads(line)["state"] for line in kept["000000"].splitlines()] == [
        "failed",
        "cancelled",
    ]
    assert kept_name(OWNER) not in chunks

    # Compacting again (an operator stopped before the status named the file) changes nothing.
    assert asyncio.run(compact(api, OWNER, chunks, str(tmp_path))) == fields
    asyncio.run(drop_chunks(api, OWNER, chunks))
    assert list(api.config_maps) == [("team", kept_name(OWNER))]


def retried(api: FakeApi, units: int) -> list[str]:
    """The chunks of an ended flow whose units each failed once, then succeeded (and one unit
    that succeeded at once)."""

    async def go() -> list[str]:
        journal = ConfigMapJournal(api, OWNER)
        await journal.load()
        journal.record_finished(record(99))
        for n in range(units):
            first = replace(record(n), state="failed", exit_code=3, retrying=True)
            journal.record_finished(replace(first, reason="exited with code 3", stderr_tail="x"))
            journal.record_finished(replace(record(n), attempts=2, exit_code=0))
        await journal.close()
        return journal.chunks

    return asyncio.run(go())


def test_compacting_keeps_every_attempt_of_a_retried_unit_in_the_cluster(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    chunks = retried(api, 1)
    fields = asyncio.run(compact(api, OWNER, chunks, str(tmp_path)))
    compacted = fields["journalCompacted"]
    assert (compacted["units"], compacted["kept"], compacted["notKept"]) == (3, 2, 0)
    kept = api.config_maps[("team", kept_name(OWNER))]["data"]["000000"].splitlines()
    attempts = [(json.loads(line)["id"], json.loads(line)["attempts"]) for line in kept]
    assert attempts == [("flow/s/u0", 1), ("flow/s/u0", 2)], "not u99, which succeeded at once"


def test_what_the_clusters_bound_leaves_out_is_counted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    api = FakeApi()
    chunks = retried(api, 10)
    monkeypatch.setattr(journal_module, "KEPT_BYTES", 1000)
    compacted = asyncio.run(compact(api, OWNER, chunks, str(tmp_path)))["journalCompacted"]
    assert compacted["kept"] > 0 and compacted["notKept"] > 0
    assert compacted["kept"] + compacted["notKept"] == 20
    lines = (tmp_path / compacted["path"]).read_text().splitlines()
    assert len(lines) == compacted["units"] == 21, "the store has every record"


def test_a_flow_whose_units_all_succeeded_keeps_no_config_map(tmp_path: Path) -> None:
    api = FakeApi()
    chunks = ended_journal(api, ["succeeded", "cached", "succeeded"])
    fields = asyncio.run(compact(api, OWNER, chunks, str(tmp_path)))
    asyncio.run(drop_chunks(api, OWNER, chunks))
    assert fields["journal"] == [] and api.config_maps == {}
    assert fields["journalCompacted"]["units"] == 3
