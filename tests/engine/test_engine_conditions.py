"""Step results and `when`: what later units see of them, skipped units, sections' results,
a fan-out over a result, resume, and the task a micro pod is handed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meta.engine.driver import Exit, PodTask, StepTask
from meta.engine.engine import Engine
from meta.engine.frontiers import Done
from meta.engine.records import UnitRecord
from meta.engine.visit import fed, named, upstream_variable
from meta.errors import InputFault, RunFailed, TemplateFault
from tests.engine.fakes import (
    ALWAYS,
    FakeDriver,
    FakeJournal,
    RecordingListener,
    plan_of,
    run,
    section,
    step,
)


def dag(*units: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return section("d", "dag", units=list(units), **extra)


def test_a_false_when_skips_the_unit_and_downstream_sees_it_skipped(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        dag(
            step("check"),
            step("build", when="{{ upstream.check.result.changed }}", dependsOn=["check"]),
            step(
                "report",
                "report",
                "{{ upstream.build.state }}",
                "{{ upstream.check.result.changed }}",
                dependsOn=["check", "build"],
            ),
        ),
    )
    driver = FakeDriver(results={"t/d/check": {"changed": False}})
    listener, journal = RecordingListener(), FakeJournal()
    run(plan, driver, listener=listener, journal=journal)

    assert driver.start_ids() == ["t/d/check", "t/d/report"]
    report = driver.tasks()["t/d/report"]
    assert report.command == ("report", "skipped", "false")
    # The skipped unit is not in META_UPSTREAM.
    assert report.upstream == [("check", "t/d/check")]
    skipped = [r for r in journal.ended if r.id == "t/d/build"]
    assert [(r.state, r.reason, r.attempts) for r in skipped] == [("skipped", "condition", 0)]
    assert [r.state for r in listener.finished if r.id == "t/d/build"] == ["skipped"]
    assert [r.result for r in journal.ended if r.id == "t/d/check"] == [{"changed": False}]


def test_a_true_when_runs_the_unit(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "s",
            "sequence",
            units=[step("a"), step("b", when="upstream.a.result > 2"), step("c", when="true")],
        ),
    )
    driver = FakeDriver(results={"t/s/a": 3})
    done = run(plan, driver)
    assert driver.start_ids() == ["t/s/a", "t/s/b", "t/s/c"]
    assert done == Done("s", "t/s/c", "succeeded", None)


@pytest.mark.parametrize(
    ("when", "runs"),
    [
        ("{{ upstream.a.result }}", False),  # the text "false" written as a result
        ("{{ upstream.a.result == 'false' }}", True),
        ("result-{{ upstream.a.result }}", True),
        ("{{ upstream.a.result | upper }}", False),
        ("{{ upstream.a.state }}", True),
        ("false", False),
        ("upstream.a.result == 'no'", False),
    ],
)
def test_condition_forms(tmp_path: Path, when: str, runs: bool) -> None:
    plan = plan_of(tmp_path, section("s", "sequence", units=[step("a"), step("b", when=when)]))
    driver = FakeDriver(results={"t/s/a": "false"})
    run(plan, driver)
    assert ("t/s/b" in driver.start_ids()) is runs


def test_a_skipped_section_runs_none_of_its_units(tmp_path: Path) -> None:
    inner = section("inner", "sequence", units=[step("x"), step("y")], when="false")
    plan = plan_of(tmp_path, section("s", "sequence", units=[inner, step("after")]))
    driver = FakeDriver()
    listener = RecordingListener()
    done = run(plan, driver, listener=listener)
    assert driver.start_ids() == ["t/s/after"]
    assert [(r.id, r.state) for r in listener.finished][:1] == [("t/s/inner", "skipped")]
    assert driver.tasks()["t/s/after"].upstream == []
    assert done.unit_id == "t/s/after"


def test_when_on_visits_flow_refs_and_generate_units_is_checked(tmp_path: Path) -> None:
    other = tmp_path / "other.flow.yaml"
    plan_of(tmp_path, step("o"), filename="other.flow.yaml", name="other")
    plan = plan_of(
        tmp_path,
        section(
            "s",
            "sequence",
            units=[
                section(
                    "fan",
                    "fanout",
                    over={"input": "xs"},
                    visit=step("v-{{ item }}", when="{{ item % 2 == 0 }}"),
                ),
                {"name": "ref", "flowRef": {"path": str(other)}, "when": "{{ false }}"},
                {
                    "name": "gen",
                    "generate": {"description": {"input": "xs"}},
                    "when": "upstream.ref.state == 'succeeded'",
                },
            ],
        ),
        inputs={"xs": {"value": [0, 1, 2, 3]}},
    )
    driver = FakeDriver()
    listener = RecordingListener()
    run(plan, driver, listener=listener)
    assert sorted(driver.start_ids()) == ["t/s/fan/0/v-0", "t/s/fan/2/v-2"]
    skipped = sorted(r.id for r in listener.finished if r.state == "skipped")
    assert skipped == ["t/s/fan/1/v-1", "t/s/fan/3/v-3", "t/s/gen", "t/s/ref"]


def test_a_section_result_is_its_result_units_by_name(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "s",
            "sequence",
            units=[
                dag(step("a"), step("b"), step("c", when="false")),
                step("after", "after", "{{ upstream.d.result | tojson }}"),
            ],
        ),
    )
    driver = FakeDriver(results={"t/s/d/a": 1, "t/s/d/b": [2]})
    run(plan, driver)
    after = driver.tasks()["t/s/after"]
    assert after.command == ("after", '{"a": 1, "b": [2]}')
    # The skipped sink has no outputs: the combined section holds the other two.
    assert driver.combined["t/s/d"] == [("a", "t/s/d/a"), ("b", "t/s/d/b")]


def test_a_fanout_walks_an_upstream_result(tmp_path: Path) -> None:
    fan = section(
        "fan",
        "fanout",
        over={"result": "list", "path": "/items"},
        visit=step("v-{{ index }}", "v", "{{ item }}"),
        gather=step("total", "total", "{{ upstream | length }}"),
    )
    plan = plan_of(tmp_path, section("s", "sequence", units=[step("list"), fan]))
    driver = FakeDriver(results={"t/s/list": {"items": ["x", "y", "z"]}, "t/s/fan/1/v-1": "why"})
    done = run(plan, driver)
    tasks = driver.tasks()
    assert [tasks[f"t/s/fan/{i}/v-{i}"].command for i in range(3)] == [
        ("v", "x"),
        ("v", "y"),
        ("v", "z"),
    ]
    assert tasks["t/s/fan/0/v-0"].input == "x"
    assert tasks["t/s/fan/total"].command == ("total", "3")
    assert done.unit_id == "t/s/fan/total"


def test_a_fanout_over_a_skipped_result_runs_no_visit(tmp_path: Path) -> None:
    fan = section("fan", "fanout", over={"result": "list"}, visit=step("v-{{ index }}"))
    plan = plan_of(tmp_path, section("s", "sequence", units=[step("list", when="false"), fan]))
    driver = FakeDriver()
    run(plan, driver)
    assert driver.start_ids() == []


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (None, "got no result"),
        (7, "got int"),
    ],
)
def test_a_fanout_over_a_result_that_is_no_collection_is_a_fault(
    tmp_path: Path, result: Any, message: str
) -> None:
    fan = section("fan", "fanout", over={"result": "list"}, visit=step("v-{{ index }}"))
    plan = plan_of(tmp_path, section("s", "sequence", units=[step("list"), fan]))
    with pytest.raises(InputFault) as caught:
        run(plan, FakeDriver(results={"t/s/list": result}))
    (fault,) = caught.value.faults
    assert fault.file == "the result of t/s/list" and message in fault.reason


def test_a_when_that_fails_for_its_data_is_a_fault_naming_it(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("s", "sequence", units=[step("a"), step("b", when="upstream.a.result.nope")]),
    )
    with pytest.raises(TemplateFault) as caught:
        run(plan, FakeDriver(results={"t/s/a": {"x": 1}}))
    (fault,) = caught.value.faults
    assert fault.pointer == "/spec/root/units/1/when"
    assert "nope" in fault.reason


def test_resume_keeps_results_and_skips_and_runs_neither_again(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        dag(
            step("check"),
            step("build", when="{{ upstream.check.result.changed }}", dependsOn=["check"]),
            step("after", "after", "{{ upstream.check.result.n }}", dependsOn=["build", "check"]),
        ),
    )
    first = FakeJournal()
    run(plan, FakeDriver(results={"t/d/check": {"changed": False, "n": 5}}), journal=first)
    earlier = {r.id: r for r in first.ended if r.id != "t/d/after"}
    assert {r.state for r in earlier.values()} == {"succeeded", "skipped"}

    driver = FakeDriver()
    listener = RecordingListener()
    resumed = {uid: _resumed(record) for uid, record in earlier.items()}
    run(plan, driver, listener=listener, journal=FakeJournal(resumed))
    assert driver.start_ids() == ["t/d/after"]
    assert driver.tasks()["t/d/after"].command == ("after", "5")


def _resumed(record: UnitRecord) -> UnitRecord:
    return replace(record, resumed=True)


def test_a_micro_pod_is_handed_its_feeders_states_and_results(tmp_path: Path) -> None:
    """The quarterback's engine gets `upstream` as the operator's has it."""
    micro = section("m", "sequence", "micro", units=[step("in", "in", "{{ upstream.a.result }}")])
    plan = plan_of(
        tmp_path,
        dag(step("a"), step("z", when="false"), {**micro, "dependsOn": ["a", "z"]}),
    )
    handed: list[PodTask] = []

    class Pods(FakeDriver):
        async def start_pod(self, task: PodTask) -> Any:
            handed.append(task)
            inner = FakeDriver()
            done = await Engine(plan, inner).run_pod(task)
            self.inner = inner
            return _Ended(done.result)

    pods = Pods(results={"t/d/a": "hello"})
    asyncio.run(Engine(plan, pods, pods=pods).run())
    (task,) = handed
    assert task.upstream == [("a", "t/d/a")]
    assert list(task.fed_by) == [
        ("a", "t/d/a", "succeeded", "hello", False, True),
        ("z", "t/d/z", "skipped", None, False, True),
    ]
    assert pods.inner.tasks()["t/d/m/in"].command == ("in", "hello")


def test_a_micro_pod_in_finally_runs_its_units_after_a_failure(tmp_path: Path) -> None:
    """The pod's engine is told the failure is only shown to it, as a task written before
    feeders said so is read as feeding it."""
    report = section(
        "report", "sequence", "micro", units=[step("in", "in", "{{ upstream.a.state }}")]
    )
    plan = plan_of(
        tmp_path,
        section("d", "dag", onFailure="continue", units=[step("a")], **{"finally": [report]}),
    )
    handed: list[PodTask] = []

    class Pods(FakeDriver):
        async def start_pod(self, task: PodTask) -> Any:
            handed.append(task)
            self.inner = FakeDriver()
            done = await Engine(plan, self.inner).run_pod(task)
            return _Ended(done.result)

    pods = Pods(fail={"t/d/a": ALWAYS})
    with pytest.raises(RunFailed):
        asyncio.run(Engine(plan, pods, pods=pods).run())
    (task,) = handed
    assert list(task.fed_by) == [("a", "t/d/a", "failed", None, True, True)]
    assert pods.inner.tasks()["t/d/finally/report/in"].command == ("in", "failed")
    assert fed([("a", "t/d/a", "failed", None)]) == (Done("a", "t/d/a", "failed"),)


class _Ended:
    def __init__(self, result: Any) -> None:
        self._result = result

    async def wait(self) -> Exit:
        return Exit(0, result=self._result)

    async def stop(self) -> None:
        pass

    async def last_words(self) -> str:
        return ""


def test_upstream_variable_and_names_share_their_numbering() -> None:
    parts = [
        Done("v", "a", result=1),
        Done("v", "b", "skipped"),
        Done("v", "c", "cached", result=3),
    ]
    assert upstream_variable(tuple(parts)) == {
        "v.0": {"state": "succeeded", "cached": False, "result": 1},
        "v.1": {"state": "skipped", "cached": False, "result": None},
        "v.2": {"state": "succeeded", "cached": True, "result": 3},
    }
    assert named(parts) == [("v.0", "a"), ("v.2", "c")]


def test_a_shared_name_passes_over_a_number_another_unit_is_named() -> None:
    parts = [Done("v", "a"), Done("v", "b"), Done("v.1", "c"), Done("v.2", "d")]
    assert named(parts) == [("v.0", "a"), ("v.3", "b"), ("v.1", "c"), ("v.2", "d")]


def test_step_task_env_sees_upstream(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "s",
            "sequence",
            units=[
                step("a"),
                {"name": "b", "run": {"command": ["b"], "env": {"R": "{{ upstream.a.result.k }}"}}},
            ],
        ),
    )
    driver = FakeDriver(results={"t/s/a": {"k": "v"}})
    run(plan, driver)
    task: StepTask = driver.tasks()["t/s/b"]
    assert task.env == {"R": "v"}
