"""Named entries read from the data when the section runs: a fanout whose entries wait for the
entries they name (`over.dependsOn`), and a section inside a visit that walks the visit's own
node (`over` without `input`), so one flow runs any data of its shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meta.errors import InputFault
from tests.engine.fakes import FakeDriver, plan_of, run, section, step

WORKFLOW = {
    "jobs": {
        "test": {"needs": ["lint", "build"], "steps": [{"run": "pytest"}]},
        "lint": {"steps": [{"run": "ruff"}, {"run": "mypy"}]},
        "build": {"steps": [{"run": "make"}]},
        "ship": {"needs": "test", "uses": "./deploy.yml"},
    }
}


def _jobs(**over: Any) -> dict[str, Any]:
    """A fanout over the jobs in `needs` order, each job's steps in order in one micro section
    (a job without steps runs one step of its own)."""
    steps = section(
        "steps",
        "fanout",
        "micro",
        maxActive=1,
        over={"path": "/steps"},
        visit=step("s", "s", "{{ item.run }}", "{{ path }}", "{{ index }}"),
    )
    visit = {
        "cases": [
            {"when": "'steps' in node", "unit": steps},
            {"when": "true", "unit": step("job", "job", "{{ index }}", "{{ path }}")},
        ]
    }
    return section(
        "jobs",
        "fanout",
        maxActive=4,
        over={"input": "wf", "path": "/jobs", "dependsOn": "needs", **over},
        visit=visit,
    )


def test_entries_run_as_a_dag_from_the_data_and_their_steps_from_the_entry(
    tmp_path: Path,
) -> None:
    plan = plan_of(
        tmp_path, _jobs(), inputs={"wf": {"path": "wf.json"}}, files={"wf.json": WORKFLOW}
    )
    driver = FakeDriver()
    run(plan, driver)

    commands = {uid: task.command for uid, task in driver.tasks().items()}
    assert commands == {
        "t/jobs/lint/steps/0/s": ("s", "ruff", "/jobs/lint/steps/0", "0"),
        "t/jobs/lint/steps/1/s": ("s", "mypy", "/jobs/lint/steps/1", "1"),
        "t/jobs/build/steps/0/s": ("s", "make", "/jobs/build/steps/0", "0"),
        "t/jobs/test/steps/0/s": ("s", "pytest", "/jobs/test/steps/0", "0"),
        "t/jobs/ship/job": ("job", "ship", "/jobs/ship"),
    }
    order = driver.start_ids()
    for before, after in [("lint", "test"), ("build", "test"), ("test", "ship")]:
        assert driver.end_of(f"t/jobs/{before}/steps/0/s") < driver.start_of(
            next(uid for uid in order if uid.startswith(f"t/jobs/{after}/"))
        )
    # Each job's steps share one pod; a job's first step receives the jobs it needs.
    tasks = driver.tasks()
    assert tasks["t/jobs/lint/steps/1/s"].pod == "t/jobs/lint/steps"
    assert [name for name, _ in tasks["t/jobs/test/steps/0/s"].upstream] == ["lint", "build"]
    assert tasks["t/jobs/ship/job"].upstream == [("test", "t/jobs/test/steps/0/s")]


@pytest.mark.parametrize(
    ("jobs", "pointer", "reason"),
    [
        ({"a": {"needs": ["b"]}}, "/jobs/a/needs/0", "'b' names no entry"),
        ({"a": {"needs": "b"}}, "/jobs/a/needs", "'b' names no entry"),
        ({"a": {"needs": 3}}, "/jobs/a/needs", "'needs' must name entries: a name or a list"),
        (
            {"a": {"needs": "c"}, "b": {"needs": "a"}, "c": {"needs": ["b"]}},
            "/jobs/a/needs",
            "entries wait for each other in a cycle: a -> c -> b -> a",
        ),
        (["a"], "/jobs", "section 'jobs' runs named entries: needs an object"),
    ],
)
def test_entries_that_name_no_entry_or_wait_in_a_cycle_stop_the_run_before_it_starts(
    tmp_path: Path, jobs: Any, pointer: str, reason: str
) -> None:
    with pytest.raises(InputFault) as caught:
        plan_of(
            tmp_path, _jobs(), inputs={"wf": {"path": "wf.json"}}, files={"wf.json": {"jobs": jobs}}
        )
    ((fault),) = caught.value.faults
    assert (fault.file.rsplit("/", 1)[-1], fault.pointer, fault.reason) == (
        "wf.json",
        pointer,
        reason,
    )


def test_a_section_over_its_visits_node_checks_that_data_when_it_starts(tmp_path: Path) -> None:
    """Data made upstream is checked when the section meets it, at its place in the data."""
    walk = section(
        "each",
        "fanout",
        over={"input": "wf", "path": "/jobs"},
        visit=section(
            "tree",
            "dfs",
            over={"path": "/tree", "entries": "kids"},
            visit=step("n", "n", "{{ path }}"),
        ),
    )
    data = {"jobs": [{"tree": {"kids": {"a": {}}}}, {"tree": {"kids": {"b": 4}}}]}
    plan = plan_of(tmp_path, walk, inputs={"wf": {"value": data}})
    with pytest.raises(InputFault) as caught:
        run(plan, FakeDriver())
    ((fault),) = caught.value.faults
    assert (fault.pointer, fault.reason) == (
        "/spec/inputs/wf/value/jobs/1/tree/kids/b",
        "section 'tree' walks a tree of JSON objects; this is not an object",
    )


@pytest.mark.parametrize("over", [{"path": "/x"}, {}], ids=["path", "empty"])
def test_only_a_section_inside_a_visit_may_leave_out_its_input(
    tmp_path: Path, over: dict[str, str]
) -> None:
    from meta.errors import FlowInvalid

    with pytest.raises(FlowInvalid) as caught:
        plan_of(tmp_path, section("s", "fanout", over=over, visit=step("v")))
    ((fault),) = caught.value.faults
    assert (fault.pointer, fault.reason) == (
        "/spec/root/over",
        "over needs an input here: only a section inside a visit may leave it out to walk "
        "the visit's node",
    )


def test_an_empty_over_inside_a_visit_walks_the_visits_node(tmp_path: Path) -> None:
    inner = section("inner", "fanout", over={}, visit=step("s{{ item }}"))
    outer = section("outer", "fanout", over={"input": "m"}, visit=inner)
    plan = plan_of(tmp_path, outer, inputs={"m": {"value": [[1, 2], [3]]}})
    driver = FakeDriver()
    run(plan, driver)
    assert sorted(driver.start_ids()) == [
        "t/outer/0/inner/0/s1",
        "t/outer/0/inner/1/s2",
        "t/outer/1/inner/0/s3",
    ]


def test_a_data_key_named_finally_takes_its_position_not_the_finally_units_id(
    tmp_path: Path,
) -> None:
    fan = section(
        "fan",
        "fanout",
        over={"input": "m"},
        visit=step("x"),
        **{"finally": [step("x")]},
    )
    plan = plan_of(tmp_path, fan, inputs={"m": {"value": {"finally": 1, "other": 2}}})
    driver = FakeDriver()
    run(plan, driver)
    assert sorted(driver.start_ids()) == ["t/fan/0/x", "t/fan/finally/x", "t/fan/other/x"]


def _needs_walk(tmp_path: Path, jobs: dict[str, Any], visit: str = "job") -> dict[str, Any]:
    """`jobs` run in `needs` order, each a step named `visit` whose command lists the names
    its upstream goes by; the tasks of the run, by unit id."""
    walk = section(
        "jobs",
        "fanout",
        over={"input": "w", "path": "/jobs", "dependsOn": "needs"},
        visit=step(visit, "job", "{{ upstream | list | join(',') }}"),
    )
    plan = plan_of(tmp_path, walk, inputs={"w": {"value": {"jobs": jobs}}})
    driver = FakeDriver()
    run(plan, driver)
    return driver.tasks()


def test_a_member_keyed_finally_feeds_its_dependents_under_its_key(tmp_path: Path) -> None:
    tasks = _needs_walk(tmp_path, {"finally": {}, "b": {"needs": "finally"}})
    assert sorted(tasks) == ["t/jobs/0/job", "t/jobs/b/job"]
    assert tasks["t/jobs/b/job"].command == ("job", "finally")
    assert [name for name, _ in tasks["t/jobs/b/job"].upstream] == ["finally"]


def test_members_keyed_by_numbers_or_dotted_names_feed_their_dependents_under_their_keys(
    tmp_path: Path,
) -> None:
    jobs = {
        "2019": {},
        "v1.2": {},
        "first job": {},
        "last": {"needs": ["2019", "v1.2", "first job"]},
    }
    last = _needs_walk(tmp_path, jobs)["t/jobs/last/job"]
    # A key no unit could be named (a space in it) goes by the visit's name.
    assert [name for name, _ in last.upstream] == ["2019", "v1.2", "job"]
    assert last.command == ("job", "2019,v1.2,job")


def test_a_member_whose_key_names_no_unit_never_takes_the_name_of_a_member_keyed_so(
    tmp_path: Path,
) -> None:
    jobs = {"build": {}, "unit tests": {}, "deploy": {"needs": ["build", "unit tests"]}}
    deploy = _needs_walk(tmp_path, jobs, visit="build")["t/jobs/deploy/build"]
    assert [name for name, _ in deploy.upstream] == ["build", "build_"]
    assert deploy.command == ("job", "build,build_")
