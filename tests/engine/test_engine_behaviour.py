"""Retries, timeouts, failures, the journal, flowRefs, templates, cases and pods."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from meta.engine.engine import Engine
from meta.engine.records import UnitRecord
from meta.errors import LimitExceeded, RunFailed, TemplateFault, UserError
from meta.plan.plan import compile_plan
from tests.engine.fakes import (
    ALWAYS,
    FAIL_CODE,
    FakeDriver,
    FakeJournal,
    RecordingListener,
    plan_of,
    run,
    section,
    step,
    write_flow,
)

# Retries and timeouts.


def test_a_unit_failing_twice_succeeds_on_its_third_attempt(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("seq", "sequence", units=[step("flaky", retries=2), step("after")]),
        defaults={"retryBackoffSeconds": 0.02},
    )
    driver = FakeDriver(fail={"t/seq/flaky": 2})
    listener = RecordingListener()
    journal = FakeJournal()
    done = run(plan, driver, listener=listener, journal=journal)

    attempts = [e for e in driver.starts() if e.id == "t/seq/flaky"]
    assert [e.task.attempt for e in attempts] == [1, 2, 3]
    ends = [e for e in driver.events if e.kind == "end" and e.id == "t/seq/flaky"]
    assert [e.code for e in ends] == [FAIL_CODE, FAIL_CODE, 0]
    # Backoff doubles: 0.02 s before the second attempt, 0.04 s before the third.
    assert attempts[1].at - ends[0].at >= 0.019
    assert attempts[2].at - ends[1].at >= 0.039
    states = [(r.state, r.attempts) for r in listener.finished if r.id == "t/seq/flaky"]
    assert states == [("failed", 1), ("failed", 2), ("succeeded", 3)]
    # Every attempt is journalled (the report keeps them all); the next unit then runs on the
    # third attempt's output.
    assert [(r.id, r.state, r.attempts, r.retrying) for r in journal.ended] == [
        ("t/seq/flaky", "failed", 1, True),
        ("t/seq/flaky", "failed", 2, True),
        ("t/seq/flaky", "succeeded", 3, False),
        ("t/seq/after", "succeeded", 1, False),
    ]
    assert driver.tasks()["t/seq/after"].upstream == [("flaky", "t/seq/flaky")]
    assert done.unit_id == "t/seq/after"


def test_retries_run_out(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("seq", "sequence", units=[step("bad"), step("after")]),
        defaults={"retries": 1, "retryBackoffSeconds": 0},
    )
    driver = FakeDriver(fail={"t/seq/bad": ALWAYS})
    listener = RecordingListener()
    with pytest.raises(RunFailed) as failed:
        run(plan, driver, listener=listener)
    assert failed.value.unit_id == "t/seq/bad"
    assert failed.value.reason == f"exited with code {FAIL_CODE}"
    assert failed.value.stderr_tail == "boom from t/seq/bad attempt 2"
    assert driver.start_ids() == ["t/seq/bad", "t/seq/bad"]
    last = listener.finished[-1]
    assert (last.id, last.state, last.attempts, last.exit_code) == ("t/seq/bad", "failed", 2, 3)


def test_a_hanging_unit_times_out_and_is_stopped(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("seq", "sequence", units=[step("slow", timeoutSeconds=0.2), step("after")]),
    )
    driver = FakeDriver(hang={"t/seq/slow"})
    began = time.monotonic()
    with pytest.raises(RunFailed) as failed:
        run(plan, driver)
    assert 0.19 <= time.monotonic() - began < 2
    assert failed.value.unit_id == "t/seq/slow"
    assert "timed out after 0.2 s" in failed.value.reason
    assert driver.stopped == ["t/seq/slow"]
    assert driver.start_ids() == ["t/seq/slow"]


def test_the_default_timeout_applies_and_each_timed_out_attempt_is_stopped(
    tmp_path: Path,
) -> None:
    plan = plan_of(
        tmp_path,
        step("slow"),
        defaults={"timeoutSeconds": 0.05, "retries": 1, "retryBackoffSeconds": 0},
    )
    driver = FakeDriver(hang={"t/slow"})
    with pytest.raises(RunFailed, match=re.escape("timed out after 0.05 s")):
        run(plan, driver)
    assert [e.task.attempt for e in driver.starts()] == [1, 2]
    assert driver.stopped == ["t/slow", "t/slow"]


# A failure stops the flow.


def test_a_failure_stops_the_flow(tmp_path: Path) -> None:
    fan = section(
        "fan",
        "fanout",
        maxActive=3,
        over={"input": "items"},
        visit=step("v"),
        gather=step("g"),
    )
    plan = plan_of(
        tmp_path,
        section("seq", "sequence", units=[fan, step("after")]),
        inputs={"items": {"value": list(range(10))}},
    )
    driver = FakeDriver(
        sleep={"t/seq/fan/1/v": 0.05},
        fail={"t/seq/fan/1/v": ALWAYS},
        hang={"t/seq/fan/0/v", "t/seq/fan/2/v"},
    )
    listener = RecordingListener()
    with pytest.raises(RunFailed) as failed:
        run(plan, driver, listener=listener)
    assert failed.value.unit_id == "t/seq/fan/1/v"
    assert failed.value.stderr_tail == "boom from t/seq/fan/1/v attempt 1"
    # Nothing new starts after the failure; the running siblings are stopped.
    assert sorted(driver.start_ids()) == ["t/seq/fan/0/v", "t/seq/fan/1/v", "t/seq/fan/2/v"]
    assert sorted(driver.stopped) == ["t/seq/fan/0/v", "t/seq/fan/2/v"]
    states = {r.id: r.state for r in listener.finished}
    assert states == {
        "t/seq/fan/0/v": "cancelled",
        "t/seq/fan/1/v": "failed",
        "t/seq/fan/2/v": "cancelled",
    }
    assert all(live == 0 for live in driver.live.values())


def test_a_failure_deep_in_one_branch_stops_the_other_and_closes_its_pod(tmp_path: Path) -> None:
    pod = section("pod", "sequence", "micro", units=[step("a1"), step("a2")])
    dag = section("d", "dag", units=[pod, step("b"), step("c", dependsOn=["b"])])
    plan = plan_of(tmp_path, dag)
    driver = FakeDriver(hang={"t/d/pod/a1"}, sleep={"t/d/b": 0.05}, fail={"t/d/b": ALWAYS})
    with pytest.raises(RunFailed) as failed:
        run(plan, driver)
    assert failed.value.unit_id == "t/d/b"
    assert sorted(driver.start_ids()) == ["t/d/b", "t/d/pod/a1"]
    assert driver.stopped == ["t/d/pod/a1"]
    assert driver.opened == driver.closed == ["t/d/pod"]
    assert driver.problems == []


def test_cancelling_the_run_stops_every_running_step(tmp_path: Path) -> None:
    """What Ctrl-C does: the engine's task is cancelled; nothing may be left running."""
    fan = section("fan", "fanout", "micro", maxActive=3, over={"input": "n"}, visit=step("v"))
    plan = plan_of(tmp_path, fan, inputs={"n": {"value": [1, 2, 3, 4]}})
    driver = FakeDriver(hang={f"t/fan/{i}/v" for i in range(4)})

    async def main() -> None:
        task = asyncio.create_task(Engine(plan, driver).run())
        while len(driver.starts()) < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(driver.stopped) == ["t/fan/0/v", "t/fan/1/v", "t/fan/2/v"]
    assert driver.opened == driver.closed == ["t/fan"]
    assert all(live == 0 for live in driver.live.values())


def test_parallelism_bounds_the_whole_run_whatever_each_sections_max_active(
    tmp_path: Path,
) -> None:
    def fan(name: str) -> dict[str, Any]:
        return section(name, "fanout", maxActive=4, over={"input": "n"}, visit=step("v"))

    root = section("both", "dag", units=[fan("a"), fan("b"), step("after", dependsOn=["a", "b"])])
    items = list(range(8))
    ids = [f"t/both/{s}/{i}/v" for s in "ab" for i in items]
    plan = plan_of(tmp_path, root, inputs={"n": {"value": items}}, parallelism=3)
    driver = FakeDriver(sleep=dict.fromkeys(ids, 0.01))
    listener = RecordingListener()
    run(plan, driver, listener=listener)
    assert driver.most_at_once() == 3, "two sections of maxActive 4, the run's bound 3"
    for fanned in ("t/both/a", "t/both/b"):
        # Units waiting for their turn are not counted in the section's peak.
        assert driver.peak[fanned] <= listener.section(fanned).peak_active <= 3
    assert sorted(driver.start_ids()) == sorted([*ids, "t/both/after"])
    # A unit waiting for its turn is not running: each started record is a step started.
    started = [r.id for r in listener.started]
    assert started == driver.start_ids()


def test_parallelism_1_runs_one_unit_at_a_time_retries_and_finally_units_included(
    tmp_path: Path,
) -> None:
    root = section(
        "d",
        "dag",
        units=[step("flaky", retries=2), step("b"), step("c")],
        **{"finally": [step("tidy")]},
    )
    plan = plan_of(tmp_path, root, parallelism=1, defaults={"retryBackoffSeconds": 0})
    driver = FakeDriver(fail={"t/d/flaky": 1}, sleep={"t/d/b": 0.01, "t/d/c": 0.01})
    run(plan, driver)
    assert driver.most_at_once() == 1
    assert sorted(driver.start_ids()) == sorted(
        ["t/d/flaky", "t/d/flaky", "t/d/b", "t/d/c", "t/d/finally/tidy"]
    )


def test_under_parallelism_a_stop_is_not_held_up_by_units_waiting_for_their_turn(
    tmp_path: Path,
) -> None:
    # Each visit: a step, then its finally unit. Item 0's step fails first; the others are
    # slow. The failed visit's finally unit goes before the steps still waiting for a turn, so
    # its failure stops them: none runs to its end after it, and every visit's finally runs.
    visit = section("v", "sequence", units=[step("w")], **{"finally": [step("vf")]})
    fan = section("fan", "fanout", maxActive=8, over={"input": "n"}, visit=visit)
    items = list(range(6))
    plan = plan_of(tmp_path, fan, inputs={"n": {"value": items}}, parallelism=2)
    slow = {f"t/fan/{i}/v/w": 0.02 if i == 0 else 0.2 for i in items}
    driver = FakeDriver(fail={"t/fan/0/v/w": ALWAYS}, sleep=slow)
    with pytest.raises(RunFailed):
        run(plan, driver)
    assert driver.most_at_once() <= 2
    events = [(e.kind, e.id) for e in driver.events]
    after = events[events.index(("start", "t/fan/0/v/finally/vf")) :]
    assert not [uid for kind, uid in after if kind == "end" and uid.endswith("/w")], events
    assert len([uid for kind, uid in events if kind == "start" and uid.endswith("/w")]) < 6
    assert {f"t/fan/{i}/v/finally/vf" for i in items} <= set(driver.start_ids()), events


def test_maxactive_slots_are_filled(tmp_path: Path) -> None:
    fan = section("fan", "fanout", maxActive=3, over={"input": "n"}, visit=step("v"))
    plan = plan_of(tmp_path, fan, inputs={"n": {"value": list(range(10))}})
    driver = FakeDriver(sleep={f"t/fan/{i}/v": 0.01 for i in range(10)})
    listener = RecordingListener()
    run(plan, driver, listener=listener)
    assert driver.peak["t/fan"] == 3
    record = listener.section("t/fan")
    assert (record.pattern, record.max_active, record.peak_active, record.units_run) == (
        "fanout",
        3,
        3,
        10,
    )


# The journal: a resumed run does not run finished units again.


def test_units_the_journal_holds_are_not_started_again(tmp_path: Path) -> None:
    tree = {"id": 0, "children": [{"id": 1, "children": [{"id": 3}]}, {"id": 2}]}
    walk = section(
        "walk",
        "dfs",
        order="post",
        over={"input": "tree", "children": "children"},
        visit=step("visit", "visit", "{{ node.id }}"),
    )
    plan = plan_of(tmp_path, walk, inputs={"tree": {"value": tree}})
    done_before = ["t/walk/root.0.0/visit", "t/walk/root.1/visit"]
    records = [
        UnitRecord(uid, "visit", "t/walk", "macro", "succeeded", 1, 1.0, 2.0, 0)
        for uid in done_before
    ]
    journal = FakeJournal({r.id: r for r in records})
    listener = RecordingListener()
    driver = FakeDriver()
    done = run(plan, driver, listener=listener, journal=journal)

    assert driver.start_ids() == ["t/walk/root.0/visit", "t/walk/root/visit"]
    tasks = driver.tasks()
    # A skipped unit still hands its (stored) outputs on.
    assert tasks["t/walk/root.0/visit"].upstream == [("visit", "t/walk/root.0.0/visit")]
    assert tasks["t/walk/root/visit"].upstream == [
        ("visit.0", "t/walk/root.0/visit"),
        ("visit.1", "t/walk/root.1/visit"),
    ]
    assert [r.id for r in journal.started] == ["t/walk/root.0/visit", "t/walk/root/visit"]
    assert [r for r in listener.finished if r.id in done_before] == records
    assert done.unit_id == "t/walk/root/visit"


# flowRef.


def test_flowref_ids_inputs_and_outputs(tmp_path: Path) -> None:
    write_flow(
        tmp_path / "sub",
        section(
            "inner",
            "sequence",
            units=[step("x", "x", "{{ inputs.n }}", "{{ flow.name }}"), step("y")],
        ),
        name="child",
        filename="child.flow.yaml",
        inputs={"n": {"value": 1}},
    )
    ref = {"name": "sub", "flowRef": {"path": "sub/child.flow.yaml", "inputs": {"n": {"value": 7}}}}
    fan = section("fan", "fanout", over={"input": "items"}, visit=ref, maxActive=1)
    top = section("top", "sequence", units=[step("pre"), ref, step("post"), fan])
    plan = plan_of(tmp_path, top, inputs={"items": {"value": ["a", "b"]}})
    driver = FakeDriver()
    run(plan, driver)

    assert driver.start_ids() == [
        "t/top/pre",
        "t/top/sub/inner/x",
        "t/top/sub/inner/y",
        "t/top/post",
        "t/top/fan/0/sub/inner/x",
        "t/top/fan/0/sub/inner/y",
        "t/top/fan/1/sub/inner/x",
        "t/top/fan/1/sub/inner/y",
    ]
    tasks = driver.tasks()
    x = tasks["t/top/sub/inner/x"]
    assert x.command == ("x", "7", "child")
    assert x.input == {"n": 7}
    assert x.upstream == [("pre", "t/top/pre")]
    assert x.section == "t/top/sub/inner"
    assert x.workdir == str((tmp_path / "sub").resolve())
    assert tasks["t/top/pre"].input == {"items": ["a", "b"]}
    assert tasks["t/top/pre"].workdir == str(tmp_path.resolve())
    # The flowRef stands for its flow's outputs, under its own name.
    assert tasks["t/top/post"].upstream == [("sub", "t/top/sub/inner/y")]
    assert tasks["t/top/fan/1/sub/inner/x"].input == {"n": 7}


# Templates.


def test_names_and_commands_are_rendered_per_item(tmp_path: Path) -> None:
    visit = {
        "name": "do-{{ item.name }}",
        "run": {
            "command": ["work", "{{ item.size * 2 }}", "{{ index }}", "{{ inputs.cfg }}"],
            "env": {"WHO": "{{ item.name | upper }}", "PLAIN": "x"},
            "image": "img:{{ item.name }}",
        },
    }
    fan = section("fan", "fanout", over={"input": "items"}, visit=visit, gather=step("g"))
    items = [{"name": "alpha", "size": 2}, {"name": "beta", "size": 5}]
    plan = plan_of(
        tmp_path,
        fan,
        inputs={"items": {"value": items}, "cfg": {"path": "cfg.json"}},
        files={"cfg.json": {}},
    )
    driver = FakeDriver()
    run(plan, driver)
    tasks = driver.tasks()
    alpha, beta = tasks["t/fan/0/do-alpha"], tasks["t/fan/1/do-beta"]
    cfg = str((tmp_path / "cfg.json").resolve())
    assert alpha.command == ("work", "4", "0", cfg)
    assert beta.command == ("work", "10", "1", cfg)
    assert dict(beta.env) == {"WHO": "BETA", "PLAIN": "x"}
    assert (alpha.image, alpha.name, beta.name) == ("img:alpha", "do-alpha", "do-beta")
    assert tasks["t/fan/g"].upstream == [("do-alpha", alpha.id), ("do-beta", beta.id)]


def test_a_rendered_name_that_is_no_name_is_a_user_error(tmp_path: Path) -> None:
    visit = step("n-{{ item }}")
    plan = plan_of(
        tmp_path,
        section("fan", "fanout", over={"input": "items"}, visit=visit, maxActive=1),
        inputs={"items": {"value": ["ok", "not ok"]}},
    )
    driver = FakeDriver()
    with pytest.raises(TemplateFault) as fault:
        run(plan, driver)
    (only,) = fault.value.faults
    assert only.pointer == "/spec/root/visit/name"
    assert "rendered unit name 'n-not ok' must start with a letter or digit" in only.reason
    assert "/1" in only.reason
    assert driver.start_ids() == ["t/fan/0/n-ok"]


@pytest.mark.parametrize("field", ["command", "env"])
def test_a_rendered_nul_is_a_fault_not_a_start_that_fails(tmp_path: Path, field: str) -> None:
    use = step("use", "echo", "{{ upstream.a.result }}")
    if field == "env":
        use = step("use", "echo")
        use["run"]["env"] = {"V": "{{ upstream.a.result }}"}
    plan = plan_of(tmp_path, section("s", "sequence", units=[step("a"), {**use, "retries": 2}]))
    driver = FakeDriver(results={"t/s/a": "a\u0000b"})
    with pytest.raises(TemplateFault) as fault:
        run(plan, driver)
    (only,) = fault.value.faults
    where = (
        "/spec/root/units/1/run/command/1" if field == "command" else "/spec/root/units/1/run/env/V"
    )
    assert only.pointer == where
    assert "renders a NUL character" in only.reason
    assert driver.start_ids() == ["t/s/a"]


def test_a_program_rendering_empty_is_a_fault_not_a_start_that_fails(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        step("use", "{{ inputs.program }}", "x"),
        inputs={"program": {"value": ""}},
    )
    driver = FakeDriver()
    with pytest.raises(TemplateFault) as fault:
        run(plan, driver)
    (only,) = fault.value.faults
    assert (only.pointer, only.reason) == (
        "/spec/root/run/command/0",
        "the program to run renders empty",
    )
    assert driver.start_ids() == []


def test_a_template_failing_on_the_data_is_a_user_error_naming_the_node(tmp_path: Path) -> None:
    visit = step("v", "v", "{{ item.size }}")
    plan = plan_of(
        tmp_path,
        section("fan", "fanout", over={"input": "items"}, visit=visit, maxActive=1),
        inputs={"items": {"value": [{"size": 1}, {"other": 2}]}},
    )
    with pytest.raises(TemplateFault) as fault:
        run(plan, FakeDriver())
    (only,) = fault.value.faults
    assert only.pointer == "/spec/root/visit/run/command/1"
    assert "size" in only.reason and "/1" in only.reason


# Cases.

CASES = {
    "cases": [
        {"when": "depth == 0", "unit": step("company", "company", "{{ node.name }}")},
        {"when": "depth == 1", "unit": step("dept", "dept", "{{ node.name }}")},
        {"when": "node.kind == 'team'", "unit": step("team-{{ node.name }}", "team")},
    ]
}


def _org(tmp_path: Path, tree: object) -> tuple[FakeDriver, object]:
    walk = section(
        "walk", "dfs", over={"input": "org", "children": "units"}, visit=CASES, order="pre"
    )
    plan = compile_plan(
        write_flow(tmp_path, walk, inputs={"org": {"path": "org.json"}}, files={"org.json": tree})
    )
    driver = FakeDriver()
    return driver, run(plan, driver)


def test_cases_pick_a_unit_per_node(tmp_path: Path) -> None:
    org = {
        "name": "acme",
        "units": [
            {
                "name": "rnd",
                "units": [{"name": "a", "kind": "team"}, {"name": "b", "kind": "team"}],
            },
            {"name": "ops"},
        ],
    }
    driver, _ = _org(tmp_path, org)
    assert driver.start_ids() == [
        "t/walk/root/company",
        "t/walk/root.0/dept",
        "t/walk/root.0.0/team-a",
        "t/walk/root.0.1/team-b",
        "t/walk/root.1/dept",
    ]
    tasks = driver.tasks()
    assert tasks["t/walk/root.1/dept"].command == ("dept", "ops")
    assert tasks["t/walk/root.0.1/team-b"].upstream == [("dept", "t/walk/root.0/dept")]


def test_a_node_no_case_matches_is_a_user_error_naming_the_data_file_and_node(
    tmp_path: Path,
) -> None:
    org = {"name": "acme", "units": [{"name": "rnd", "units": [{"name": "x", "kind": "robot"}]}]}
    with pytest.raises(UserError) as error:
        _org(tmp_path, org)
    (only,) = error.value.faults
    assert only.file.endswith("org.json")
    assert only.pointer == "/units/0/units/0"
    assert "no case" in only.reason


# Pods.


def test_micro_pods_open_once_per_outermost_micro_section(tmp_path: Path) -> None:
    inner = section("inner", "sequence", "micro", units=[step("b")])
    pod = section("pod", "sequence", "micro", units=[step("a"), inner, step("c")])
    fan = section("fan", "fanout", maxActive=2, over={"input": "items"}, visit=pod)
    top = section("top", "sequence", units=[fan, step("macro")])
    plan = plan_of(tmp_path, top, inputs={"items": {"value": [1, 2, 3]}})
    driver = FakeDriver()
    run(plan, driver)
    pods = [f"t/top/fan/{i}/pod" for i in range(3)]
    assert sorted(driver.opened) == sorted(driver.closed) == pods
    assert driver.problems == []
    tasks = driver.tasks()
    for i, uid in enumerate(pods):
        assert [tasks[f"{uid}/{s}"].pod for s in ("a", "inner/b", "c")] == [uid] * 3
        assert tasks[f"{uid}/inner/b"].scope == "micro"
        assert tasks[f"{uid}/a"].input == i + 1
    assert tasks["t/top/macro"].pod is None
    assert tasks["t/top/macro"].scope == "macro"
    # Each pod's last unit is what leaves it; the fanout combines them for its consumer.
    assert tasks["t/top/macro"].upstream == [("fan", "t/top/fan")]
    assert driver.combined == {
        "t/top/fan": [
            ("pod.0", "t/top/fan/0/pod/c"),
            ("pod.1", "t/top/fan/1/pod/c"),
            ("pod.2", "t/top/fan/2/pod/c"),
        ]
    }


# Limits.


def test_limits_max_units_stops_a_run_reaching_too_many_steps(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("seq", "sequence", units=[step(f"s{i}") for i in range(5)]),
        limits={"maxUnits": 3},
    )
    driver = FakeDriver()
    with pytest.raises(LimitExceeded, match="maxUnits"):
        run(plan, driver)
    assert driver.start_ids() == ["t/seq/s0", "t/seq/s1", "t/seq/s2"]


def test_two_sibling_names_that_render_alike_are_refused(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("both", "sequence", units=[step("{{ inputs.who }}"), step("same")]),
        inputs={"who": {"value": "same"}},
    )
    driver = FakeDriver()
    with pytest.raises(TemplateFault) as fault:
        run(plan, driver)
    (only,) = fault.value.faults
    assert only.pointer == "/spec/root/units/1/name"
    assert "another unit here is named 'same' too" in only.reason
    assert driver.start_ids() == ["t/both/same"]


def test_a_unit_cancelled_while_waiting_to_retry_is_cancelled_not_failed(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("seq", "sequence", units=[step("bo", retries=3)]),
        defaults={"retryBackoffSeconds": 30},
    )
    driver = FakeDriver(fail={"t/seq/bo": ALWAYS})
    listener = RecordingListener()
    journal = FakeJournal()

    async def main() -> None:
        task = asyncio.create_task(Engine(plan, driver, listener=listener, journal=journal).run())
        while not journal.ended:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert driver.start_ids() == ["t/seq/bo"]
    ends = [(r.state, r.attempts, r.retrying, r.exit_code) for r in journal.ended]
    assert ends == [("failed", 1, True, FAIL_CODE), ("cancelled", 1, False, FAIL_CODE)]
    last = listener.finished[-1]
    assert (last.state, last.started_at) == ("cancelled", journal.ended[0].started_at)
    assert last.reason == f"exited with code {FAIL_CODE}; cancelled while waiting to retry"
