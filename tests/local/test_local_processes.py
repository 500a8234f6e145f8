"""How the local runtime waits for its steps: a pidfd on the event loop where the system has
them, a thread where it has not; the same results either way, and nothing left open after."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meta.local.runner import start_run

pytestmark = pytest.mark.e2e

# `make` writes data (persisted), `use` reads it upstream (staged) and writes both logs.
DATA_FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: data}
spec:
  root:
    name: d
    scope: macro
    pattern: dag
    maxActive: 2
    units:
      - {name: make, run: {command: [sh, -c, 'echo 21 > $META_OUTPUT/n']}}
      - {name: idle, run: {command: ["true"]}}
      - name: use
        dependsOn: [make, idle]
        run:
          command:
            - sh
            - -c
            - >-
              echo $(( $(cat $META_UPSTREAM/make/n) * 2 )) > $META_OUTPUT/n;
              echo out; echo err >&2
"""

# `bad` fails once `slow` runs; `slow` (and the sleep it became) must be stopped.
FAILING_FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: failing}
spec:
  root:
    name: d
    scope: macro
    pattern: dag
    maxActive: 2
    units:
      - {name: slow, run: {command: [sh, -c, 'echo $$ > "$0"; exec sleep 1000', "{pid_file}"]}}
      - name: bad
        run: {command: [sh, -c, 'while [ ! -s "$0" ]; do sleep 0.01; done; exit 3', "{pid_file}"]}
"""


def _one_step(tmp_path: Path, name: str, script: str) -> Path:
    """A flow `name` whose root is one step `p` running `script` in sh."""
    flow = tmp_path / f"{name}.flow.yaml"
    flow.write_text(
        f"apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\nmetadata: {{name: {name}}}\n"
        f"spec:\n  root: {{name: p, run: {{command: [sh, -c, {json.dumps(script)}]}}}}\n"
    )
    return flow


def _descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _run_data_flow(tmp_path: Path) -> None:
    flow = tmp_path / "data.flow.yaml"
    flow.write_text(DATA_FLOW)
    workdir = tmp_path / "w"
    before = _descriptors()
    outcome = start_run(flow, workdir, {})
    assert outcome.state == "succeeded"
    assert _descriptors() == before
    units = {unit["id"]: unit for unit in outcome.report["units"]}
    assert Path(units["data/d/use"]["outputs"], "n").read_text() == "42\n"
    assert (workdir / "logs" / "data/d/use" / "1.out").read_text() == "out\n"
    assert (workdir / "logs" / "data/d/use" / "1.err").read_text() == "err\n"
    assert outcome.report["bytesPersisted"] == len("21\n") + len("42\n")
    assert outcome.report["bytesStaged"] == len("21\n")


def test_steps_waited_for_on_the_event_loop_leave_no_descriptor_open(tmp_path: Path) -> None:
    if not hasattr(os, "pidfd_open"):
        pytest.skip("this system has no pidfds")
    _run_data_flow(tmp_path)


def test_without_pidfds_a_thread_waits_and_the_results_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", refused, raising=False)
    _run_data_flow(tmp_path)


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "thread"])
def test_a_failed_run_stops_its_running_steps_and_closes_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pidfds: bool
) -> None:
    if pidfds and not hasattr(os, "pidfd_open"):
        pytest.skip("this system has no pidfds")
    if not pidfds:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    pid_file = tmp_path / "slow.pid"
    flow = tmp_path / "failing.flow.yaml"
    flow.write_text(FAILING_FLOW.replace("{pid_file}", str(pid_file)))
    before = _descriptors()
    outcome = start_run(flow, tmp_path / "w", {})
    assert outcome.state == "failed"
    assert outcome.report["error"]["unit"] == "failing/d/bad"
    states = {unit["id"]: unit["state"] for unit in outcome.report["units"]}
    assert states["failing/d/slow"] == "cancelled"
    assert not Path("/proc", pid_file.read_text().strip()).exists()
    assert _descriptors() == before


@pytest.mark.parametrize(
    ("making", "reason"),
    [
        ('ln -s / "$META_OUTPUT/root"', "the output 'root' links outside META_OUTPUT"),
        ('ln -s /proc/kmsg "$META_OUTPUT/log"', "the output 'log' links outside META_OUTPUT"),
        ('mkfifo "$META_OUTPUT/pipe"', "the output 'pipe' is not a regular file or folder"),
        ('mkdir "$META_OUTPUT/d"; ln -s .. "$META_OUTPUT/d/up"', "'d/up' links to a folder"),
    ],
    ids=["root", "kmsg", "fifo", "loop"],
)
def test_outputs_that_are_not_plain_files_inside_the_outputs_folder_fail_the_step(
    tmp_path: Path, making: str, reason: str
) -> None:
    outcome = start_run(_one_step(tmp_path, "links", making), tmp_path / "w", {})
    assert outcome.state == "failed"
    assert reason in outcome.report["error"]["reason"]
    assert not (tmp_path / "w" / "store" / "links" / "p").exists()


def test_a_link_to_a_file_inside_the_outputs_folder_is_kept_as_a_copy(tmp_path: Path) -> None:
    making = 'echo hi > "$META_OUTPUT/a"; ln -s a "$META_OUTPUT/b"'
    outcome = start_run(_one_step(tmp_path, "inside", making), tmp_path / "w", {})
    assert outcome.state == "succeeded"
    kept = Path(outcome.report["outputs"])
    assert (kept / "b").read_text() == "hi\n" and not (kept / "b").is_symlink()
    assert outcome.report["bytesPersisted"] == 2 * len("hi\n")


def test_a_program_that_cannot_start_fails_its_step_saying_so(tmp_path: Path) -> None:
    flow = tmp_path / "unstartable.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\n"
        "metadata: {name: unstartable}\n"
        'spec:\n  root: {name: p, run: {command: ["meta-no-such-program"]}}\n'
    )
    before = _descriptors()
    outcome = start_run(flow, tmp_path / "w", {})
    assert outcome.state == "failed"
    error = outcome.report["error"]
    assert (error["reason"], error["stderrTail"]) == (
        "exited with code 127",
        "cannot start 'meta-no-such-program': No such file or directory",
    )
    assert _descriptors() == before


def test_a_command_line_too_long_for_the_system_fails_saying_what_is_too_long(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "long.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\n"
        "metadata: {name: long}\n"
        "spec:\n  inputs: {n: {value: 140000}}\n"
        '  root: {name: p, run: {command: ["true", "{{ \'x\' * inputs.n }}"]}}\n'
    )
    outcome = start_run(flow, tmp_path / "w", {})
    assert outcome.state == "failed"
    error = outcome.report["error"]
    assert error["reason"] == "exited with code 126"
    assert error["stderrTail"].startswith(
        "cannot start 'true': its command line and environment are too long for the system: "
    )
    longest = "the longest argument or variable 140,001 (Linux takes 131,072 bytes"
    assert longest in error["stderrTail"]


def test_a_step_whose_folder_is_gone_fails_saying_so(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    flow = folder / "gone.flow.yaml"
    flow.write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\n"
        "metadata: {name: gone}\n"
        "spec:\n  root:\n    name: s\n    scope: macro\n    pattern: sequence\n    units:\n"
        '      - {name: a, run: {command: [sh, -c, "rm -r \\"$PWD\\""]}}\n'
        '      - {name: b, run: {command: ["true"]}}\n'
    )
    outcome = start_run(flow, tmp_path / "w", {})
    assert outcome.state == "failed"
    error = outcome.report["error"]
    assert (error["reason"], error["stderrTail"]) == (
        "exited with code 126",
        f"cannot start 'true': its folder {folder} is not there",
    )
