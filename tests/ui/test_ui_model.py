"""The run model's states, from journals written as a run's sessions write them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meta.local.runner import fingerprint
from meta.plan.plan import compile_plan
from meta.ui.model import CHANGED, RunModel
from tests.ui.demo import write_demo

FETCH = "orders-demo/pipeline/fetch"
FLAKY = "orders-demo/pipeline/flaky"
PARSE = "orders-demo/pipeline/regions/2/region-us-east/parse"


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _run(tmp_path: Path, records: list[dict[str, Any]], recorded: str | None = None) -> RunModel:
    """A run of the demo flow whose journal holds `records`; its run.json records the flow's
    fingerprint as `recorded` (none: as a run.json that records none)."""
    flow = tmp_path / "flow" / "demo.flow.yaml"
    if not flow.exists():
        write_demo(flow.parent, python=sys.executable)
    workdir = tmp_path / "run"
    workdir.mkdir()
    info: dict[str, Any] = {"name": "orders-demo", "flow": str(flow), "startedAt": time.time()}
    if recorded is not None:
        info["fingerprint"] = recorded
    (workdir / "run.json").write_text(json.dumps(info))
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (workdir / "journal.jsonl").write_text(lines)
    model = RunModel(workdir)
    model.catch_up()
    return model


def _finished(uid: str, state: str, attempts: int = 1) -> dict[str, Any]:
    return {
        "event": "finished",
        "id": uid,
        "name": uid.rsplit("/", 1)[-1],
        "section": uid.rsplit("/", 1)[0],
        "scope": "macro",
        "state": state,
        "attempts": attempts,
        "started_at": 1.0,
        "finished_at": 2.0,
        "exit_code": 0 if state == "succeeded" else 1,
        "reason": "",
        "stderr_tail": "",
        "resumed": False,
    }


def test_a_killed_session_leaves_cached_and_cancelled_units_and_an_interrupted_run(
    tmp_path: Path,
) -> None:
    pid = _dead_pid()
    model = _run(
        tmp_path,
        [
            {"event": "session", "at": 1.0, "pid": pid},
            {"event": "started", "id": FETCH, "attempt": 1, "at": 1.0},
            _finished(FETCH, "succeeded"),
            {"event": "session", "at": 3.0, "pid": pid},
            {"event": "started", "id": FLAKY, "attempt": 1, "at": 3.0},
            {"event": "started", "id": FLAKY, "attempt": 2, "at": 3.5},
            {"event": "started", "id": PARSE, "attempt": 1, "at": 3.6},
        ],
    )
    summary = model.summary()
    assert summary["state"] == "interrupted"
    assert model.units[FETCH].state == "cached"
    assert model.units[FLAKY].state == "cancelled"
    assert summary["units"] == {
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 2,
        "cached": 1,
        "skipped": 0,
        "retried": 1,
    }
    # Each unit counts in its section and in every section around it.
    groups = summary["groups"]
    assert groups["orders-demo/pipeline/regions/region-{{ item }}"]["counts"]["cancelled"] == 1
    assert groups["orders-demo/pipeline/regions"]["counts"]["cancelled"] == 1
    assert groups["orders-demo/pipeline"]["counts"]["cancelled"] == 2
    parse = "orders-demo/pipeline/regions/region-{{ item }}/parse"
    assert summary["nodes"][parse]["cancelled"] == 1
    assert [a["attempt"] for a in model.detail(FLAKY)["attempts"]] == [1, 2]


def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    model = _run(tmp_path, [{"event": "started", "id": FETCH, "attempt": 1, "at": 1.0}])
    line = json.dumps(_finished(FETCH, "failed")) + "\n"
    journal = model.workdir / "journal.jsonl"
    with journal.open("a") as out:
        out.write(line[:30])
    assert model.update() == set()
    assert model.units[FETCH].state == "running"
    with journal.open("a") as out:
        out.write(line[30:])
    assert model.update() == {FETCH}
    assert model.units[FETCH].state == "failed"


def test_units_of_a_run_whose_flow_file_is_gone_are_shown_by_their_ids(tmp_path: Path) -> None:
    model = _run(
        tmp_path,
        [
            {"event": "session", "at": 1.0, "pid": _dead_pid()},
            {"event": "started", "id": PARSE, "attempt": 1, "at": 1.0},
            _finished(PARSE, "succeeded"),
        ],
    )
    (tmp_path / "flow" / "demo.flow.yaml").unlink()
    model = RunModel(model.workdir)
    model.catch_up()
    summary = model.summary()
    assert summary["structureFault"] is not None and "demo.flow.yaml" in summary["structureFault"]
    parent = PARSE.rsplit("/", 1)[0]
    assert summary["groups"][parent]["counts"]["succeeded"] == 1
    assert summary["units"]["succeeded"] == 1
    assert [node["id"] for node in model.graph()["nodes"]] == [parent]


def test_a_run_whose_flow_file_changed_since_is_not_drawn_as_the_flow_is_now(
    tmp_path: Path,
) -> None:
    records = [
        {"event": "session", "at": 1.0, "pid": _dead_pid()},
        {"event": "started", "id": PARSE, "attempt": 1, "at": 1.0},
    ]
    flow = write_demo(tmp_path / "flow", python=sys.executable)
    model = _run(tmp_path, records, recorded=fingerprint(compile_plan(flow)))
    assert model.summary()["structureFault"] is None
    assert "orders-demo/pipeline/regions" in {node["id"] for node in model.graph()["nodes"]}

    flow.write_text(flow.read_text().replace('name: "region-', 'name: "zone-'))
    model = RunModel(model.workdir)
    model.catch_up()
    summary = model.summary()
    assert summary["structureFault"] == f"{flow}: /: {CHANGED}"
    # The units are shown by their ids, not placed in the structure the flow has now.
    parent = PARSE.rsplit("/", 1)[0]
    assert [node["id"] for node in model.graph()["nodes"]] == [parent]
    assert summary["groups"][parent]["counts"]["cancelled"] == 1


def test_a_run_given_a_value_for_an_input_without_default_is_drawn(tmp_path: Path) -> None:
    flow = tmp_path / "given.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\n"
        "kind: MetaFlow\n"
        "metadata: {name: given}\n"
        "spec:\n"
        "  inputs: {n: {schema: {type: integer}}}\n"
        "  root: {name: s, scope: macro, pattern: sequence,\n"
        "         units: [{name: a, run: {command: [x]}}]}\n"
    )
    workdir = tmp_path / "run"
    workdir.mkdir()
    info = {"flow": str(flow), "inputs": {}, "values": {"n": 3}, "startedAt": time.time()}
    (workdir / "run.json").write_text(json.dumps(info))
    model = RunModel(workdir)
    assert model.summary()["structureFault"] is None
    assert [node["id"] for node in model.graph()["nodes"]] == ["given/s", "given/s/a"]


FANOUTS = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: f}
spec:
  inputs:
    items: {value: [a, b, c]}
  root:
    name: root
    scope: macro
    pattern: dag
    maxActive: 2
    units:
      - name: fan
        scope: macro
        pattern: fanout
        maxActive: 3
        over: {input: items}
        visit: {name: "w-{{ item }}", run: {command: [sleep, "60"]}}
      - name: pod
        scope: micro
        pattern: fanout
        maxActive: 3
        over: {input: items}
        visit: {name: "m-{{ item }}", run: {command: [sleep, "60"]}}
"""


def test_a_running_steps_input_is_in_its_details_macro_or_micro(
    tmp_path: Path, run_flow: Callable[[Path, str], subprocess.Popen[str]]
) -> None:
    flow = tmp_path / "f.flow.yaml"
    flow.write_text(FANOUTS)
    running = run_flow(flow, "f")
    journal = tmp_path / "runs" / "f" / "journal.jsonl"
    deadline = time.monotonic() + 30
    while not journal.exists() or journal.read_text().count('"started"') < 6:
        assert running.poll() is None and time.monotonic() < deadline, "the steps did not start"
        time.sleep(0.1)
    model = RunModel(journal.parent)
    model.catch_up()
    inputs = {uid: model.detail(uid)["input"] for uid in model.units}
    assert inputs == {
        **{f"f/root/fan/{n}/w-{item}": item for n, item in enumerate("abc")},
        **{f"f/root/pod/{n}/m-{item}": item for n, item in enumerate("abc")},
    }


def test_a_units_result_and_a_skipped_units_reason_are_in_its_details(tmp_path: Path) -> None:
    session = {"event": "session", "at": 1.0, "pid": _dead_pid()}
    skipped = {**_finished(FLAKY, "skipped", attempts=0), "reason": "condition"}
    model = _run(tmp_path, [session, {**_finished(FETCH, "succeeded"), "result": [1, 2]}, skipped])
    assert model.detail(FETCH)["result"] == [1, 2]
    flaky = model.detail(FLAKY)
    assert (flaky["state"], flaky["reason"], flaky["result"]) == ("skipped", "condition", None)
