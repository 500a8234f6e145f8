"""onFailure (stop, continue) in every pattern, finally units on sections and on the flow."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta.engine.engine import Engine
from meta.errors import LimitExceeded, RunFailed
from tests.engine.fakes import (
    ALWAYS,
    FakeDriver,
    FakeJournal,
    RecordingListener,
    journal_of,
    plan_of,
    run,
    section,
    step,
    write_flow,
)


def states(listener: RecordingListener) -> dict[str, str]:
    """Each unit's last state, by id."""
    return {record.id: record.state for record in listener.finished}


def reporting(**env: str) -> dict[str, Any]:
    """A finally step named `report` that takes `env` (templates of what it is shown)."""
    return step("report", run={"command": ["report"], "env": env})


def failed_run(plan, driver: FakeDriver, **options) -> RunFailed:  # type: ignore[no-untyped-def]
    with pytest.raises(RunFailed) as failed:
        run(plan, driver, **options)
    return failed.value


# onFailure: continue


def test_continue_in_a_dag_skips_the_failed_units_dependants_transitively(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "d",
            "dag",
            onFailure="continue",
            units=[
                step("a"),
                step("b", dependsOn=["a"]),
                step("c", dependsOn=["b"]),
                step("free"),
                step("after-free", dependsOn=["free"]),
                step("both", dependsOn=["a", "free"]),
            ],
        ),
    )
    driver = FakeDriver(fail={"t/d/a": ALWAYS}, sleep={"t/d/free": 0.05})
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)

    assert [f.unit_id for f in failure.failures] == ["t/d/a"]
    assert states(listener) == {
        "t/d/a": "failed",
        "t/d/free": "succeeded",
        "t/d/after-free": "succeeded",
        "t/d/b": "skipped",
        "t/d/c": "skipped",
        "t/d/both": "skipped",
    }
    skipped = [r for r in listener.finished if r.state == "skipped"]
    assert {r.reason for r in skipped} == {"upstream-failed"}
    assert set(driver.start_ids()) == {"t/d/a", "t/d/free", "t/d/after-free"}


def test_continue_names_every_failed_unit(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("d", "dag", onFailure="continue", units=[step("x"), step("y"), step("z")]),
    )
    driver = FakeDriver(fail={"t/d/x": ALWAYS, "t/d/z": ALWAYS})
    failure = failed_run(plan, driver)
    assert sorted(f.unit_id for f in failure.failures) == ["t/d/x", "t/d/z"]
    assert "t/d/y" in driver.start_ids()
    assert "and t/d/" in str(failure)


def test_stop_stays_the_default_and_cancels_the_other_units(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, section("d", "dag", units=[step("x"), step("slow")]))
    # x ends after the loop's next turn: slow has started by then.
    driver = FakeDriver(fail={"t/d/x": ALWAYS}, hang={"t/d/slow"}, yields=lambda task: 1)
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == ["t/d/x"]
    assert states(listener)["t/d/slow"] == "cancelled"


def test_continue_in_a_sequence_skips_the_units_after_the_failed_one(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "outer",
            "dag",
            onFailure="continue",
            units=[
                section(
                    "seq",
                    "sequence",
                    onFailure="continue",
                    units=[step("one"), step("two"), step("three")],
                ),
                step("beside"),
            ],
        ),
    )
    driver = FakeDriver(fail={"t/outer/seq/one": ALWAYS})
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == ["t/outer/seq/one"]
    found = states(listener)
    assert found["t/outer/seq/two"] == found["t/outer/seq/three"] == "skipped"
    assert found["t/outer/beside"] == "succeeded"


def test_continue_in_a_fanout_lets_the_other_items_go_on(tmp_path: Path) -> None:
    fan = section(
        "fan",
        "fanout",
        onFailure="continue",
        over={"input": "items"},
        visit=step("v"),
    )
    plan = plan_of(tmp_path, fan, inputs={"items": {"value": [1, 2, 3, 4]}})
    driver = FakeDriver(fail={"t/fan/1/v": ALWAYS})
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == ["t/fan/1/v"]
    assert [states(listener)[f"t/fan/{i}/v"] for i in range(4)] == [
        "succeeded",
        "failed",
        "succeeded",
        "succeeded",
    ]


TREE = {"n": "r", "kids": [{"n": "a", "kids": [{"n": "a1"}, {"n": "a2"}]}, {"n": "b"}]}


@pytest.mark.parametrize("pattern", ["dfs", "bfs"])
def test_continue_in_a_pre_order_walk_skips_the_failed_nodes_subtree(
    tmp_path: Path, pattern: str
) -> None:
    walk = section(
        "walk",
        pattern,
        onFailure="continue",
        over={"input": "tree", "children": "kids"},
        visit=step("v"),
    )
    plan = plan_of(tmp_path, walk, inputs={"tree": {"value": TREE}})
    driver = FakeDriver(fail={"t/walk/root.0/v": ALWAYS})
    listener = RecordingListener()
    failed_run(plan, driver, listener=listener)
    assert states(listener) == {
        "t/walk/root/v": "succeeded",
        "t/walk/root.0/v": "failed",
        "t/walk/root.0.0/v": "skipped",
        "t/walk/root.0.1/v": "skipped",
        "t/walk/root.1/v": "succeeded",
    }


def test_continue_in_a_post_order_walk_skips_the_failed_nodes_ancestors(tmp_path: Path) -> None:
    walk = section(
        "walk",
        "dfs",
        order="post",
        onFailure="continue",
        over={"input": "tree", "children": "kids"},
        visit=step("v"),
    )
    plan = plan_of(tmp_path, walk, inputs={"tree": {"value": TREE}})
    driver = FakeDriver(fail={"t/walk/root.0.0/v": ALWAYS})
    listener = RecordingListener()
    failed_run(plan, driver, listener=listener)
    assert states(listener) == {
        "t/walk/root.0.0/v": "failed",
        "t/walk/root.0.1/v": "succeeded",
        "t/walk/root.0/v": "skipped",
        "t/walk/root.1/v": "succeeded",
        "t/walk/root/v": "skipped",
    }


def test_continue_in_a_fanin_skips_the_gathering_unit(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "f",
            "fanin",
            onFailure="continue",
            units=[step("x"), step("y")],
            gather=step("sum"),
        ),
    )
    listener = RecordingListener()
    failed_run(plan, FakeDriver(fail={"t/f/x": ALWAYS}), listener=listener)
    assert states(listener) == {"t/f/x": "failed", "t/f/y": "succeeded", "t/f/sum": "skipped"}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_with_continue_every_unit_not_downstream_of_a_failure_runs(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    size = data.draw(st.integers(1, 8))
    depends = [
        sorted(data.draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        for i in range(size)
    ]
    failing = data.draw(st.sets(st.integers(0, size - 1)))
    units = [
        step(f"u{i}", **({"dependsOn": [f"u{d}" for d in deps]} if deps else {}))
        for i, deps in enumerate(depends)
    ]
    plan = plan_of(
        tmp_path_factory.mktemp("dag"),
        section("d", "dag", onFailure="continue", maxActive=3, units=units),
    )
    driver = FakeDriver(fail={f"t/d/u{i}": ALWAYS for i in failing})
    listener = RecordingListener()
    downstream: set[int] = set()
    for i, deps in enumerate(depends):
        if any(d in failing or d in downstream for d in deps):
            downstream.add(i)
    if failing - downstream:
        failure = failed_run(plan, driver, listener=listener)
        assert {f.unit_id for f in failure.failures} == {f"t/d/u{i}" for i in failing - downstream}
    else:
        run(plan, driver, listener=listener)
    assert set(driver.start_ids()) == {f"t/d/u{i}" for i in range(size) if i not in downstream}
    skipped = {uid for uid, state in states(listener).items() if state == "skipped"}
    assert skipped == {f"t/d/u{i}" for i in downstream}


# finally


def test_finally_runs_after_the_section_and_sees_each_units_state(tmp_path: Path) -> None:
    report = step(
        "report",
        "report",
        run={
            "command": ["report"],
            "env": {
                "A": "{{ upstream['a'].state }}",
                "B": "{{ upstream['b'].state }}",
                "FAILED": "{{ failures | map(attribute='unit') | join(',') }}",
            },
        },
    )
    plan = plan_of(
        tmp_path,
        section(
            "d",
            "dag",
            onFailure="continue",
            units=[step("a"), step("b", dependsOn=["a"]), step("c")],
            **{"finally": [report, step("tidy")]},
        ),
    )
    driver = FakeDriver(fail={"t/d/a": ALWAYS, "t/d/finally/report": ALWAYS})
    failure = failed_run(plan, driver)
    task = driver.tasks()["t/d/finally/report"]
    assert (task.env["A"], task.env["B"], task.env["FAILED"]) == ("failed", "skipped", "t/d/a")
    # It reads the outputs of the units that succeeded, only.
    assert task.upstream == [("c", "t/d/c")]
    starts = driver.start_ids()
    assert starts.index("t/d/finally/report") > starts.index("t/d/c")
    # The failing finally unit did not stop the next one, nor hide the first failure.
    assert "t/d/finally/tidy" in starts
    assert [f.unit_id for f in failure.failures] == ["t/d/a", "t/d/finally/report"]
    assert failure.unit_id == "t/d/a"


def test_finally_runs_when_a_failure_stops_the_section(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "d",
            "dag",
            units=[step("bad"), step("slow")],
            **{"finally": [step("cleanup")]},
        ),
    )
    # bad ends after the loop's next turn: slow has started by then.
    driver = FakeDriver(fail={"t/d/bad": ALWAYS}, hang={"t/d/slow"}, yields=lambda task: 1)
    failure = failed_run(plan, driver)
    assert failure.unit_id == "t/d/bad"
    assert driver.start_of("t/d/finally/cleanup") > driver.end_of("t/d/slow")


def test_finally_of_a_section_cancelled_by_a_siblings_failure_runs(tmp_path: Path) -> None:
    inner = section(
        "inner", "sequence", units=[step("long")], **{"finally": [step("inner-cleanup")]}
    )
    plan = plan_of(tmp_path, section("d", "dag", units=[step("bad"), inner]))
    driver = FakeDriver(fail={"t/d/bad": ALWAYS}, hang={"t/d/inner/long"})
    failed_run(plan, driver)
    assert "t/d/inner/finally/inner-cleanup" in driver.start_ids()


def test_a_finally_unit_running_when_a_siblings_failure_stops_runs_to_its_end(
    tmp_path: Path,
) -> None:
    # The inner section ended first and runs its slow finally unit; the sibling then fails
    # under stop. The finally unit is not cut short: it ends, and the section with it.
    inner = section("inner", "sequence", units=[step("quick")], **{"finally": [step("slow")]})
    plan = plan_of(tmp_path, section("d", "dag", units=[inner, step("bad")]))
    driver = FakeDriver(
        fail={"t/d/bad": ALWAYS}, sleep={"t/d/bad": 0.05, "t/d/inner/finally/slow": 0.3}
    )
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert failure.unit_id == "t/d/bad"
    assert driver.start_of("t/d/inner/finally/slow") < driver.end_of("t/d/bad")
    assert "t/d/inner/finally/slow" not in driver.stopped
    assert states(listener)["t/d/inner/finally/slow"] == "succeeded"


def test_finally_runs_after_a_timeout(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section(
            "s",
            "sequence",
            units=[step("slow", timeoutSeconds=0.05)],
            **{"finally": [step("after")]},
        ),
    )
    listener = RecordingListener()
    failure = failed_run(plan, FakeDriver(hang={"t/s/slow"}), listener=listener)
    assert "timed out" in failure.reason
    assert states(listener)["t/s/finally/after"] == "succeeded"


def test_the_flows_finally_runs_after_the_root_failed(tmp_path: Path) -> None:
    notify = step("notify", run={"command": ["n"], "env": {"ROOT": "{{ upstream.s.state }}"}})
    plan = plan_of(tmp_path, section("s", "sequence", units=[step("x")]), final=[notify])
    driver = FakeDriver(fail={"t/s/x": ALWAYS})
    failure = failed_run(plan, driver)
    assert failure.unit_id == "t/s/x"
    assert driver.tasks()["t/finally/notify"].env["ROOT"] == "failed"


def test_the_flows_finally_runs_after_success_and_its_failure_fails_the_flow(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path, step("only"), final=[step("notify")])
    driver = FakeDriver(fail={"t/finally/notify": ALWAYS})
    failure = failed_run(plan, driver)
    assert [f.unit_id for f in failure.failures] == ["t/finally/notify"]
    assert driver.tasks()["t/finally/notify"].upstream == [("only", "t/only")]


def test_finally_of_a_micro_section_runs_in_its_pod(tmp_path: Path) -> None:
    pod = section("pod", "sequence", "micro", units=[step("a")], **{"finally": [step("logs")]})
    driver = FakeDriver(fail={"t/pod/a": ALWAYS})
    failed_run(plan_of(tmp_path, pod), driver)
    assert driver.tasks()["t/pod/finally/logs"].pod == "t/pod"
    assert driver.problems == []
    assert driver.closed == ["t/pod"]


def test_finally_does_not_run_when_the_run_is_stopped_from_outside(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("s", "sequence", units=[step("long")], **{"finally": [step("f")]}),
        final=[step("notify")],
    )
    driver = FakeDriver(hang={"t/s/long"})

    async def main() -> None:
        task = asyncio.ensure_future(Engine(plan, driver).run())
        while "t/s/long" not in driver.start_ids():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert driver.start_ids() == ["t/s/long"]


def test_a_resumed_run_runs_finally_again_and_skips_what_finished(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("s", "sequence", units=[step("a"), step("b")], **{"finally": [step("f")]}),
        final=[step("notify")],
    )
    first = FakeJournal()
    with pytest.raises(RunFailed):
        run(plan, FakeDriver(fail={"t/s/b": ALWAYS}), journal=first)
    finished = [r for r in first.ended if r.state == "succeeded"]
    assert {r.id for r in finished} == {"t/s/a", "t/s/finally/f", "t/finally/notify"}
    driver = FakeDriver()
    run(plan, driver, journal=journal_of(finished))
    assert driver.start_ids() == ["t/s/b", "t/s/finally/f", "t/finally/notify"]


def test_a_finished_run_resumed_runs_no_finally_unit_again(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        section("s", "sequence", units=[step("a")], **{"finally": [step("f")]}),
        final=[step("notify")],
    )
    first = FakeJournal()
    run(plan, FakeDriver(), journal=first)
    driver = FakeDriver()
    run(plan, driver, journal=journal_of(first.ended))
    assert driver.start_ids() == []


def test_a_resumed_run_runs_again_only_the_finally_units_of_sections_that_ran_something(
    tmp_path: Path,
) -> None:
    done = section("done", "sequence", units=[step("a")], **{"finally": [step("f1")]})
    redo = section("redo", "sequence", units=[step("b")], **{"finally": [step("f2")]})
    plan = plan_of(
        tmp_path,
        section("s", "sequence", onFailure="continue", units=[done, redo]),
        final=[step("notify")],
    )
    first = FakeJournal()
    with pytest.raises(RunFailed):
        run(plan, FakeDriver(fail={"t/s/redo/b": ALWAYS}), journal=first)
    finished = [r for r in first.ended if r.state == "succeeded"]
    driver = FakeDriver()
    run(plan, driver, journal=journal_of(finished))
    assert driver.start_ids() == ["t/s/redo/b", "t/s/redo/finally/f2", "t/finally/notify"]


def test_a_unit_on_record_runs_again_when_a_unit_it_reads_ran_again(tmp_path: Path) -> None:
    # p's record is gone (its stored outputs were found missing): c, and what reads c (also
    # through a section standing for it), were made from p's old outputs.
    inner = section("inner", "sequence", units=[step("c")], dependsOn=["p"])
    plan = plan_of(
        tmp_path,
        section("s", "dag", units=[step("p"), inner, step("d", dependsOn=["inner"]), step("e")]),
    )
    first = FakeJournal()
    run(plan, FakeDriver(), journal=first)
    kept = [r for r in first.ended if r.id != "t/s/p"]
    driver = FakeDriver()
    run(plan, driver, journal=journal_of(kept))
    assert driver.start_ids() == ["t/s/p", "t/s/inner/c", "t/s/d"]


def test_a_unit_on_record_skipped_now_is_recorded_so_and_what_reads_it_runs_again(
    tmp_path: Path,
) -> None:
    # p ran again and its result now makes b's condition false: b is skipped (not "resumed",
    # succeeded), and c, which read b's outputs, runs again without them.
    plan = plan_of(
        tmp_path,
        section(
            "s",
            "dag",
            units=[
                step("p"),
                step("b", dependsOn=["p"], when="{{ upstream.p.result > 1 }}"),
                step("c", dependsOn=["b"]),
            ],
        ),
    )
    first = FakeJournal()
    run(plan, FakeDriver(results={"t/s/p": 5}), journal=first)
    kept = [r for r in first.ended if r.id != "t/s/p"]
    driver, listener = FakeDriver(results={"t/s/p": 0}), RecordingListener()
    run(plan, driver, journal=journal_of(kept), listener=listener)
    assert driver.start_ids() == ["t/s/p", "t/s/c"]
    assert states(listener)["t/s/b"] == "skipped"


def test_a_later_finally_unit_runs_again_when_an_earlier_one_failed_before(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path, step("a"), final=[step("f1"), step("f2")])
    first = FakeJournal()
    with pytest.raises(RunFailed):
        run(plan, FakeDriver(fail={"t/finally/f1": ALWAYS}), journal=first)
    finished = [r for r in first.ended if r.state == "succeeded"]
    assert {r.id for r in finished} == {"t/a", "t/finally/f2"}
    driver = FakeDriver()
    run(plan, driver, journal=journal_of(finished))
    # f2 was shown f1's failure: it is shown that f1 succeeded now.
    assert driver.start_ids() == ["t/finally/f1", "t/finally/f2"]


def test_a_stop_section_inside_a_continue_section_keeps_its_failure_inside(
    tmp_path: Path,
) -> None:
    inner = section("inner", "dag", units=[step("bad"), step("slow")])
    plan = plan_of(
        tmp_path,
        section(
            "outer",
            "dag",
            onFailure="continue",
            units=[inner, step("beside"), step("after-inner", dependsOn=["inner"])],
        ),
    )
    driver = FakeDriver(
        fail={"t/outer/inner/bad": ALWAYS},
        hang={"t/outer/inner/slow"},
        sleep={"t/outer/beside": 0.05},
        yields=lambda task: 1,
    )
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == ["t/outer/inner/bad"]
    found = states(listener)
    assert found["t/outer/inner/slow"] == "cancelled"
    assert found["t/outer/beside"] == "succeeded"
    assert found["t/outer/after-inner"] == "skipped"


def test_a_finally_units_template_fault_names_where_it_is_written(tmp_path: Path) -> None:
    notify = step("notify", run={"command": ["n", "{{ upstream.only.result.count }}"]})
    plan = plan_of(tmp_path, step("only"), final=[notify])
    failure = failed_run(plan, FakeDriver())
    (found,) = failure.failures
    assert found.unit_id == "t/finally/notify"
    assert found.reason.endswith(
        "flow.yaml: /spec/finally/0/run/command/1: undefined template variable: "
        "'None' has no attribute 'count'"
    )
    assert "for the node" not in found.reason


def _tree(draw: st.DrawFn, depth: int) -> dict[str, Any]:
    kids = draw(st.integers(0, 3 if depth < 3 else 0))
    return {"kids": [_tree(draw, depth + 1) for _ in range(kids)]}


@st.composite
def trees(draw: st.DrawFn) -> dict[str, Any]:
    return _tree(draw, 0)


def _keys(node: dict[str, Any], key: str = "root") -> list[str]:
    return [key, *(k for i, kid in enumerate(node["kids"]) for k in _keys(kid, f"{key}.{i}"))]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=trees(), data=st.data())
def test_with_continue_a_pre_order_walk_runs_every_node_outside_a_failed_subtree(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, Any], data: st.DataObject
) -> None:
    keys = _keys(tree)
    failing = data.draw(st.sets(st.sampled_from(keys)))
    walk = section(
        "walk",
        "dfs",
        onFailure="continue",
        maxActive=2,
        over={"input": "tree", "children": "kids"},
        visit=step("v"),
    )
    plan = plan_of(tmp_path_factory.mktemp("tree"), walk, inputs={"tree": {"value": tree}})
    driver = FakeDriver(fail={f"t/walk/{key}/v": ALWAYS for key in failing})
    listener = RecordingListener()
    if failing:
        failed_run(plan, driver, listener=listener)
    else:
        run(plan, driver, listener=listener)

    def below_a_failure(key: str) -> bool:
        return any(key.startswith(f + ".") for f in failing)

    ran = {key for key in keys if not below_a_failure(key)}
    assert set(driver.start_ids()) == {f"t/walk/{key}/v" for key in ran}
    skipped = {uid for uid, state in states(listener).items() if state == "skipped"}
    assert skipped == {f"t/walk/{key}/v" for key in keys if below_a_failure(key)}


@pytest.mark.parametrize("parallelism", [None, 1])
def test_a_failure_under_stop_starts_nothing_new_anywhere_it_stops_while_finally_units_run(
    tmp_path: Path, parallelism: int | None
) -> None:
    # bad fails; its section's finally unit runs before the failure reaches top, which it stops:
    # meanwhile other, a sibling under top, starts nothing more (under spec.parallelism, the
    # turn bad gave back goes to the finally unit, not to a unit of other waiting for one).
    bad = section("bad", "sequence", units=[step("fail")], **{"finally": [step("cleanup")]})
    items = {"value": list(range(20))}
    other = section("other", "fanout", maxActive=2, over={"input": "xs"}, visit=step("o"))
    plan = plan_of(
        tmp_path,
        section("top", "dag", units=[bad, other]),
        inputs={"xs": items},
        parallelism=parallelism,
    )
    driver = FakeDriver(
        fail={"t/top/bad/fail": ALWAYS},
        sleep={"t/top/bad/fail": 0.05, "t/top/bad/finally/cleanup": 0.2}
        | {f"t/top/other/{n}/o": 0.02 for n in range(20)},
    )
    failed_run(plan, driver)
    failed = driver.end_of("t/top/bad/fail")
    later = [
        uid
        for uid in driver.start_ids()
        if uid.startswith("t/top/other/") and driver.start_of(uid) > failed
    ]
    assert later == []
    assert driver.start_of("t/top/bad/finally/cleanup") > failed
    if parallelism is None:
        assert any(uid.startswith("t/top/other/") for uid in driver.start_ids())


def test_a_failure_kept_by_a_continue_section_halts_nothing_beside_it(tmp_path: Path) -> None:
    bad = section("bad", "sequence", units=[step("fail")], **{"finally": [step("cleanup")]})
    other = section("other", "fanout", maxActive=2, over={"input": "xs"}, visit=step("o"))
    plan = plan_of(
        tmp_path,
        section("top", "dag", onFailure="continue", units=[bad, other]),
        inputs={"xs": {"value": list(range(10))}},
    )
    driver = FakeDriver(
        fail={"t/top/bad/fail": ALWAYS},
        sleep={"t/top/bad/finally/cleanup": 0.1} | {f"t/top/other/{n}/o": 0.02 for n in range(10)},
    )
    failed_run(plan, driver)
    assert sum(uid.startswith("t/top/other/") for uid in driver.start_ids()) == 10


def test_a_step_waiting_to_retry_when_a_failure_halts_its_section_ends_cancelled(
    tmp_path: Path,
) -> None:
    r = step("r", retries=3)
    x = section("x", "sequence", units=[step("bad")], **{"finally": [step("xf")]})
    plan = plan_of(
        tmp_path, section("top", "dag", units=[r, x]), defaults={"retryBackoffSeconds": 0.05}
    )
    driver = FakeDriver(
        fail={"t/top/r": ALWAYS, "t/top/x/bad": ALWAYS},
        sleep={"t/top/x/bad": 0.01, "t/top/x/finally/xf": 0.3},
    )
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == ["t/top/x/bad"]
    last = [record for record in listener.finished if record.id == "t/top/r"][-1]
    assert (last.state, last.retrying) == ("cancelled", False)
    assert last.reason.endswith("; cancelled while waiting to retry")


def test_a_failure_inside_a_finally_section_starts_nothing_new_there(tmp_path: Path) -> None:
    x = section("x", "sequence", units=[step("bad")], **{"finally": [step("xf")]})
    fs = section(
        "fs",
        "dag",
        units=[step("slow"), step("later", dependsOn=["slow"]), step("longer"), x],
    )
    plan = plan_of(tmp_path, step("ok"), final=[fs, step("after")])
    fs_id = "t/finally/fs"
    driver = FakeDriver(
        fail={f"{fs_id}/x/bad": ALWAYS},
        sleep={f"{fs_id}/slow": 0.05, f"{fs_id}/x/finally/xf": 0.2},
        hang={f"{fs_id}/longer"},
    )
    listener = RecordingListener()
    failed_run(plan, driver, listener=listener)
    started = driver.start_ids()
    assert f"{fs_id}/slow" in started
    assert f"{fs_id}/later" not in started, "later waits for slow, which ended after bad failed"
    assert states(listener)[f"{fs_id}/longer"] == "cancelled"
    assert "t/finally/after" in started, "the next finally unit runs whatever became of fs"


def test_a_section_in_finally_runs_its_units_after_a_failure_and_they_see_it(
    tmp_path: Path,
) -> None:
    collect = step("collect", run={"command": ["c"], "env": {"A": "{{ upstream.a.state }}"}})
    report = section("report", "sequence", units=[collect, step("mail")])
    plan = plan_of(
        tmp_path,
        section(
            "d",
            "dag",
            onFailure="continue",
            units=[step("a"), step("c")],
            **{"finally": [report]},
        ),
        final=[section("notify", "dag", units=[step("page"), step("log", dependsOn=["page"])])],
    )
    driver = FakeDriver(fail={"t/d/a": ALWAYS})
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == ["t/d/a"]
    started = driver.start_ids()
    for uid in ("t/d/finally/report/collect", "t/d/finally/report/mail"):
        assert uid in started, f"{uid} runs: the failure it is shown skips nothing"
    task = driver.tasks()["t/d/finally/report/collect"]
    assert task.env["A"] == "failed"
    assert task.upstream == [("c", "t/d/c")]
    # The flow's finally section, after the root failed, runs whole too.
    assert {"t/finally/notify/page", "t/finally/notify/log"} <= set(started)
    assert states(listener)["t/finally/notify/log"] == "succeeded"


def test_a_failure_inside_a_finally_section_still_skips_what_it_flows_into(
    tmp_path: Path,
) -> None:
    report = section(
        "report", "dag", onFailure="continue", units=[step("x"), step("y", dependsOn=["x"])]
    )
    plan = plan_of(
        tmp_path,
        section("d", "sequence", units=[step("a")], **{"finally": [report]}),
    )
    driver = FakeDriver(fail={"t/d/a": ALWAYS, "t/d/finally/report/x": ALWAYS})
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == ["t/d/a", "t/d/finally/report/x"]
    assert states(listener)["t/d/finally/report/y"] == "skipped"


def test_a_fault_in_a_finally_unit_fails_it_and_hides_neither_the_failure_nor_the_others(
    tmp_path: Path,
) -> None:
    """A notifier reading a result the failed unit never wrote: its template fails."""
    notify = step("notify", "notify", "{{ upstream.build.result.count }}")
    seen = step("seen", run={"command": ["seen"], "env": {"F": "{{ failures | length }}"}})
    plan = plan_of(
        tmp_path,
        section("build", "sequence", units=[step("compile")]),
        final=[notify, seen],
    )
    driver = FakeDriver(fail={"t/build/compile": ALWAYS})
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert failure.unit_id == "t/build/compile"
    assert [f.unit_id for f in failure.failures] == ["t/build/compile", "t/finally/notify"]
    assert "undefined" in failure.failures[1].reason
    assert states(listener)["t/finally/notify"] == "failed"
    # The next finally unit ran, and saw the failures so far, the one before it included.
    assert driver.tasks()["t/finally/seen"].env["F"] == "2"


def test_finally_units_see_the_units_a_failure_stopped_as_cancelled(tmp_path: Path) -> None:
    report = reporting(
        STATES="{% for n, u in upstream | dictsort %}{{ n }}={{ u.state }} {% endfor %}"
    )
    plan = plan_of(
        tmp_path,
        section(
            "d",
            "dag",
            units=[step("bad"), step("slow"), step("later", dependsOn=["slow"])],
            **{"finally": [report]},
        ),
    )
    driver = FakeDriver(fail={"t/d/bad": ALWAYS}, hang={"t/d/slow"}, yields=lambda task: 1)
    failed_run(plan, driver)
    # `later` never started: it is not listed.
    assert driver.tasks()["t/d/finally/report"].env["STATES"] == "bad=failed slow=cancelled "


def test_a_fault_deep_in_a_finally_section_or_flowref_fails_the_unit_that_meets_it(
    tmp_path: Path,
) -> None:
    """It fails as a failure of that unit would: what depends on it is skipped, and the
    finally units inside (the section's, the flowRef'd flow's) still run."""
    reads = step("reads", "r", "{{ upstream.build.result.count }}")
    inner = section(
        "inner",
        "sequence",
        units=[step("c1"), step("c2", "c2", "{{ upstream.c1.result.zz }}")],
        **{"finally": [step("cf")]},
    )
    write_flow(tmp_path / "sub", inner, name="child", filename="child.yaml", final=[step("cff")])
    cleanup = section(
        "cleanup", "sequence", units=[reads, step("after")], **{"finally": [step("ff")]}
    )
    ref = {"name": "ref", "flowRef": {"path": "sub/child.yaml"}}
    plan = plan_of(
        tmp_path,
        section("build", "sequence", units=[step("compile")]),
        final=[cleanup, ref, step("last")],
    )
    driver = FakeDriver(fail={"t/build/compile": ALWAYS})
    listener = RecordingListener()
    failure = failed_run(plan, driver, listener=listener)
    assert [f.unit_id for f in failure.failures] == [
        "t/build/compile",
        "t/finally/cleanup/reads",
        "t/finally/ref/inner/c2",
    ]
    started = driver.start_ids()
    for uid in (
        "t/finally/cleanup/finally/ff",
        "t/finally/ref/inner/finally/cf",
        "t/finally/ref/finally/cff",
        "t/finally/last",
    ):
        assert uid in started, uid
    assert "t/finally/cleanup/after" not in started
    ended = states(listener)
    assert (ended["t/finally/cleanup/reads"], ended["t/finally/ref/inner/c2"]) == (
        "failed",
        "failed",
    )


def test_a_limit_exceeded_under_a_finally_unit_stops_the_run(tmp_path: Path) -> None:
    fan = section("fan", "fanout", over={"input": "xs"}, visit=step("v"), maxActive=1)
    plan = plan_of(
        tmp_path,
        step("only"),
        final=[fan],
        inputs={"xs": {"value": [1, 2, 3]}},
        limits={"maxUnits": 2},
    )
    with pytest.raises(LimitExceeded):
        run(plan, FakeDriver())


def test_finally_units_number_a_fanouts_visits_in_item_order_whatever_ended_first(
    tmp_path: Path,
) -> None:
    report = reporting(V0="{{ upstream['v.0'].result }}")
    fan = section(
        "fan",
        "fanout",
        over={"input": "xs"},
        visit=step("v"),
        **{"finally": [report]},
    )
    plan = plan_of(tmp_path, fan, inputs={"xs": {"value": [0, 1, 2]}})
    driver = FakeDriver(
        results={f"t/fan/{i}/v": f"item {i}" for i in range(3)},
        sleep={"t/fan/0/v": 0.1, "t/fan/1/v": 0.05},
    )
    run(plan, driver)
    task = driver.tasks()["t/fan/finally/report"]
    assert task.env["V0"] == "item 0"
    assert [name for name, _ in task.upstream] == ["v.0", "v.1", "v.2"]
    assert task.upstream[0] == ("v.0", "t/fan/0/v")


def test_a_unit_waiting_for_its_turn_when_a_failure_stops_is_not_shown_cancelled(
    tmp_path: Path,
) -> None:
    report = reporting(S="{% for n in upstream | sort %}{{ n }} {% endfor %}")
    plan = plan_of(
        tmp_path,
        section("d", "dag", units=[step("x"), step("y")], **{"finally": [report]}),
        parallelism=1,
    )
    driver = FakeDriver(fail={"t/d/x": ALWAYS})
    failed_run(plan, driver)
    assert "t/d/y" not in driver.start_ids()
    assert driver.tasks()["t/d/finally/report"].env["S"] == "x "


def test_units_that_exceed_a_limit_together_leave_no_unretrieved_task(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The second one printed 'Task exception was never retrieved' with a traceback."""
    fan = section("fan", "fanout", over={"input": "xs"}, visit=step("v"), maxActive=4)
    plan = plan_of(tmp_path, fan, inputs={"xs": {"value": [1, 2, 3, 4, 5]}}, limits={"maxUnits": 2})
    with pytest.raises(LimitExceeded):
        run(plan, FakeDriver(sleep={"t/fan/0/v": 0.05, "t/fan/1/v": 0.05}))
    gc.collect()
    assert [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()] == []
