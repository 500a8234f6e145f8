"""Every attempt of a MetaFlow's units, read back from its journal as `meta status` reads it:
while it runs (the chunks), once its journal is compacted (the ConfigMap the cluster keeps), and
for the steps of a micro pod (what its quarterback kept in the store)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from meta.engine.records import UnitRecord
from meta.kube.broker import Watches
from meta.kube.controller.journal import ConfigMapJournal, chunk_name
from meta.kube.controller.reconcile import run_flow
from meta.kube.driver import KubeDriver
from meta.kube.history import Histories, flow_histories
from meta.kube.types import FlowOwner, OperatorSettings, PodSettings
from tests.kube.unit.fakes import FakeApi, FakeKubelet
from tests.kube.unit.test_runner import NS, resource, settings, step

FLAKY = "tree/seq/flaky"
FAILS_ONCE = 'if [ "$META_ATTEMPT" = 1 ]; then echo "attempt one fails" >&2; exit 3; fi'
SPEC = {
    "defaults": {"retries": 2, "retryBackoffSeconds": 0.01},
    "root": {
        "name": "seq",
        "scope": "macro",
        "pattern": "sequence",
        "units": [step("flaky", "sh", "-c", FAILS_ONCE), step("steady")],
    },
}
"""Run by the fake kubelet, `flaky` fails once whatever its command; run locally, too."""


def run_flaky(api: FakeApi, operator: OperatorSettings) -> str:
    """Run SPEC, whose `flaky` step exits 3 at its first attempt only."""
    broker = Watches()
    kubelet = FakeKubelet(api, broker, exit_codes={FLAKY: 3})
    created = api.on_create
    assert created is not None

    def once(pod: dict[str, Any]) -> None:
        created(pod)
        kubelet.exit_codes.clear()

    api.on_create = once

    async def go() -> str:
        return await run_flow(api, broker, resource(SPEC), operator)

    return asyncio.run(go())


def histories(api: FakeApi) -> Histories:
    return asyncio.run(flow_histories(api, flow(api)))


def flow(api: FakeApi) -> dict[str, Any]:
    return {**resource(SPEC), "status": api.status}


def assert_flaky_attempts(found: Histories) -> None:
    assert list(found.attempts) == [FLAKY], "only the unit tried more than once"
    first, second = found.attempts[FLAKY]
    assert (first["attempt"], first["state"], first["exitCode"]) == (1, "failed", 3)
    assert first["reason"] == "exited with code 3"
    assert first["stderrTail"] == "boom: the last words"
    assert (second["attempt"], second["state"], second["exitCode"]) == (2, "succeeded", 0)
    assert (second["reason"], second["stderrTail"]) == ("", "")
    for entry in (first, second):
        assert entry["finishedAt"] >= entry["startedAt"] > 0
    assert found.names[FLAKY] == "flaky"


def test_a_retried_units_attempts_are_read_from_the_journal_chunks(tmp_path: Path) -> None:
    api = FakeApi()
    assert run_flaky(api, settings(tmp_path)) == "Succeeded"
    assert api.config_maps, "not compacted: the chunks hold the journal"
    assert (api.status["succeeded"], api.status["failed"]) == (2, 0), "a retry is no failed unit"
    found = histories(api)
    assert_flaky_attempts(found)
    assert found.missing == ""
    # The chunks hold every unit's record: a unit that succeeded at once, when asked for.
    every = asyncio.run(flow_histories(api, flow(api), every=True))
    assert every.attempts[FLAKY] == found.attempts[FLAKY]
    assert [a["state"] for a in every.attempts["tree/seq/steady"]] == ["succeeded"]


def test_a_unit_that_failed_then_succeeded_in_a_resumed_flow_shows_both_attempts() -> None:
    api = FakeApi()
    owner = FlowOwner(NS, "tree", "uid-tree")
    failed = UnitRecord(FLAKY, "flaky", "tree/seq", "macro", "failed", 1, 1.0, 2.0, 3)
    succeeded = UnitRecord(FLAKY, "flaky", "tree/seq", "macro", "succeeded", 1, 5.0, 6.0, 0)
    steady = UnitRecord("tree/seq/steady", "steady", "tree/seq", "macro", "succeeded", 1, 7.0)

    async def go() -> Histories:
        for session in ([failed], [succeeded, steady]):
            journal = ConfigMapJournal(api, owner)
            await journal.load()
            for record in session:
                journal.record_finished(record)
            await journal.close()
        return await flow_histories(api, resource(SPEC))

    found = asyncio.run(go())
    assert list(found.attempts) == [FLAKY]
    assert [(a["state"], a["startedAt"]) for a in found.attempts[FLAKY]] == [
        ("failed", 1.0),
        ("succeeded", 5.0),
    ]


def test_an_attempt_cancelled_while_waiting_to_retry_shows_once_as_cancelled() -> None:
    api = FakeApi()
    owner = FlowOwner(NS, "tree", "uid-tree")
    failed = UnitRecord(FLAKY, "flaky", "tree/seq", "macro", "failed", 1, 1.0, 2.0, 3)
    waiting = replace(failed, retrying=True)
    cancelled = replace(failed, state="cancelled", reason="cancelled while waiting to retry")

    async def go() -> Histories:
        journal = ConfigMapJournal(api, owner)
        await journal.load()
        for record in (waiting, cancelled):
            journal.record_finished(record)
        await journal.close()
        return await flow_histories(api, resource(SPEC))

    found = asyncio.run(go())
    assert [(a["attempt"], a["state"]) for a in found.attempts[FLAKY]] == [(1, "cancelled")]


def test_after_compaction_the_kept_config_map_still_holds_a_retried_units_attempts(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    assert run_flaky(api, replace(settings(tmp_path), compact_journal=True)) == "Succeeded"
    assert api.status["journalCompacted"]["notKept"] == 0
    assert [name for _, name in api.config_maps] == ["tree-journal-kept"]
    found = histories(api)
    assert_flaky_attempts(found)
    assert found.missing == ""


def test_a_record_in_a_chunk_and_in_the_kept_config_map_counts_once(tmp_path: Path) -> None:
    api = FakeApi()
    assert run_flaky(api, settings(tmp_path)) == "Succeeded"
    chunk = api.config_maps[(NS, chunk_name(FlowOwner(NS, "tree", ""), 0))]
    kept = {**chunk, "metadata": {**chunk["metadata"], "name": "tree-journal-kept"}}
    api.config_maps[(NS, "tree-journal-kept")] = kept
    assert len(histories(api).attempts[FLAKY]) == 2


def test_what_the_cluster_did_not_keep_is_said_with_where_it_is() -> None:
    api = FakeApi()
    compacted = {"path": "uid/.journal/tree.jsonl", "units": 9, "bytes": 1, "kept": 2}
    bounded = {**resource(SPEC), "status": {"journalCompacted": {**compacted, "notKept": 4}}}
    found = asyncio.run(flow_histories(api, bounded))
    assert found.missing.startswith("4 attempt records did not fit in the cluster's journal")
    assert found.missing.endswith("every attempt is in the store, at uid/.journal/tree.jsonl")
    older = {**resource(SPEC), "status": {"journalCompacted": compacted}}
    found = asyncio.run(flow_histories(api, older))
    assert "kept only the attempts of units that did not succeed" in found.missing


def test_the_attempts_a_micro_pod_kept_go_into_the_flows_journal(tmp_path: Path) -> None:
    api = FakeApi()
    owner = FlowOwner(NS, "tree", "uid-tree")
    first = UnitRecord("tree/m/s", "s", "tree/m", "micro", "failed", 1, 1.0, 2.0, 3)
    first = replace(first, reason="exited with code 3", stderr_tail="no\n", retrying=True)
    second = UnitRecord("tree/m/s", "s", "tree/m", "micro", "succeeded", 2, 3.0, 4.0, 0)
    kept = {"records": [json.loads(json.dumps(asdict(r))) for r in (first, second)]}

    async def go() -> Histories:
        journal = ConfigMapJournal(api, owner)
        driver = KubeDriver(api, Watches(), owner, PodSettings(), None, {})  # type: ignore[arg-type]
        driver.journal = journal
        driver.report_attempts("tree-m-1", {**kept, "notKept": 0})
        await journal.close()
        return await flow_histories(api, resource(SPEC))

    found = asyncio.run(go())
    assert [(a["attempt"], a["exitCode"], a["stderrTail"]) for a in found.attempts["tree/m/s"]] == [
        (1, 3, "no\n"),
        (2, 0, ""),
    ]


def test_asked_for_every_unit_one_that_made_no_attempt_says_how_it_ended() -> None:
    api = FakeApi()
    owner = FlowOwner(NS, "tree", "uid-tree")
    steady = UnitRecord("tree/seq/steady", "steady", "tree/seq", "macro", "succeeded", 1, 7.0)
    off = UnitRecord("tree/seq/off", "off", "tree/seq", "macro", "skipped", 0, 8.0, 8.0)
    off = replace(off, reason="condition")

    async def go(every: bool) -> Histories:
        journal = ConfigMapJournal(api, owner)
        await journal.load()
        for record in (steady, off):
            journal.record_finished(record)
        await journal.close()
        return await flow_histories(api, resource(SPEC), every=every)

    found = asyncio.run(go(every=True))
    assert "tree/seq/off" not in found.attempts
    assert found.unattempted == {
        "tree/seq/off": {"state": "skipped", "reason": "condition", "cachedFrom": ""}
    }
    assert found.names["tree/seq/off"] == "off"
    assert asyncio.run(go(every=False)).unattempted == {}, "kept only when units are asked for"
