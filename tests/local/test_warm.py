"""The warm starter: `meta step` programs forked from a process that has loaded them
(meta.local.warm, meta.cli.warm), as processes of their own, with the results exec'd ones give."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meta.local import warm as warm_module
from meta.local.environment import base_environ
from meta.local.reaper import become_subreaper
from meta.local.runner import start_run
from meta.local.warm import WarmProcess, WarmStarter

META = str(Path(sys.executable).with_name("meta"))

FLOW = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {name: warm}
spec:
  inputs:
    tree: {path: tree.json}
  root:
    name: walk
    scope: macro
    pattern: dfs
    order: post
    maxActive: 2
    over: {input: tree, children: children}
    visit:
      name: "n-{{ node.id }}"
      run:
        command: [meta, step, validate-node, --schema=node.schema.json, --pointer=,
                  --children=children]
"""
SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "children": {"type": "array"}},
    "required": ["id"],
    "additionalProperties": False,
}


def _tree() -> dict[str, Any]:
    leaves = [{"id": n} for n in range(2, 8)]
    leaves[3] = {"id": "five"}
    return {"id": 0, "children": [{"id": 1, "children": leaves}]}


def _ready(starter: WarmStarter) -> WarmStarter:
    deadline = time.monotonic() + 60
    while not starter.ready():
        assert time.monotonic() < deadline, "the warm starter never said it was ready"
        time.sleep(0.01)
    return starter


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the steps warm starters forked; each starter waited for before its first
    step, so that every step but the one that starts it is forked."""
    pids: list[int] = []
    start, init = WarmStarter.start, WarmStarter.__init__

    def ready_init(self: WarmStarter, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _ready(self)

    def spied(self: WarmStarter, *args: Any, **kwargs: Any) -> WarmProcess | None:
        process = start(self, *args, **kwargs)
        if process is not None:
            pids.append(process.pid)
        return process

    monkeypatch.setattr(WarmStarter, "__init__", ready_init)
    monkeypatch.setattr(WarmStarter, "start", spied)
    return pids


def _run(tmp_path: Path, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the walk; the root's result and each unit's report."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "flow.yaml").write_text(FLOW)
    (folder / "node.schema.json").write_text(json.dumps(SCHEMA))
    (folder / "tree.json").write_text(json.dumps(_tree()))
    outcome = start_run(folder / "flow.yaml", folder / "work", {})
    assert outcome.state == "succeeded", outcome.error
    reports = {
        str(path.parent.parent.relative_to(folder / "work" / "store")): path.read_text()
        for path in (folder / "work" / "store").rglob("report.json")
    }
    root = next(u for u in outcome.report["units"] if u["id"].endswith("/n-0"))
    return root["result"], reports


def test_forked_steps_give_the_reports_and_results_exec_d_ones_give(
    tmp_path: Path, forked: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_result, warm_reports = _run(tmp_path, "warm")
    assert len(forked) == 7  # all but the first of the 8 nodes
    monkeypatch.setenv(warm_module.SWITCH, "0")
    cold_result, cold_reports = _run(tmp_path, "cold")
    assert len(forked) == 7  # none, with META_WARM_START=0
    assert warm_result == cold_result == {"valid": False, "nodes": 8, "invalid": 1}
    assert warm_reports == cold_reports
    assert "\"message\": \"'five' is not of type 'integer'\"" in "".join(warm_reports.values())


@pytest.fixture
def step_env(tmp_path: Path) -> dict[bytes, bytes]:
    assert become_subreaper()
    (tmp_path / "out").mkdir()
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    env = {k.encode(): v.encode() for k, v in base_environ(os.environ).items()}
    env[b"META_OUTPUT"] = str(tmp_path / "out").encode()
    env[b"META_INPUT"] = str(tmp_path / "in.json").encode()
    return env


@pytest.fixture
def starter(step_env: dict[bytes, bytes]) -> Iterator[WarmStarter]:
    started = _ready(WarmStarter(META, step_env))
    yield started
    started.close()


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command's name: state, ppid, pgrp, session..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


@pytest.fixture
def hung_step(
    tmp_path: Path, starter: WarmStarter, step_env: dict[bytes, bytes]
) -> Iterator[WarmProcess]:
    """A forked step that waits for ever: it reads its data from a FIFO no one writes (killed
    at the end, whatever the test did)."""
    process = _hung_step(tmp_path, starter, step_env)
    yield process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _hung_step(tmp_path: Path, starter: WarmStarter, env: dict[bytes, bytes]) -> WarmProcess:
    fifo = tmp_path / "data.json"
    os.mkfifo(fifo)
    streams = [
        os.open(os.devnull, os.O_RDONLY),
        os.open(tmp_path / "1.out", os.O_WRONLY | os.O_CREAT),
        os.open(tmp_path / "1.err", os.O_WRONLY | os.O_CREAT),
    ]
    argv = [META, "step", "validate-node", "--schema=s.json", f"--data={fifo.name}"]
    try:
        process = starter.start(argv, env, str(tmp_path), streams)
    finally:
        for stream in streams:
            os.close(stream)
    assert process is not None
    deadline = time.monotonic() + 30
    # Its streams, and none of the starter's descriptors: what it takes before its command
    # runs (its folder is the starter's already).
    while not _streams_only(process.pid, tmp_path / "1.err"):
        assert time.monotonic() < deadline, "the step never took its streams"
        time.sleep(0.01)
    return process


def _streams_only(pid: int, stderr: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    return sorted(os.listdir(fds)) == ["0", "1", "2"] and os.readlink(fds / "2") == str(stderr)


def _ended(pid: int) -> None:
    pidfd = os.pidfd_open(pid)
    try:
        assert select.select([pidfd], [], [], 30)[0], f"step {pid} did not end"
    finally:
        os.close(pidfd)


def test_a_forked_step_is_a_process_of_its_own_and_stops_as_one(
    tmp_path: Path, starter: WarmStarter, hung_step: WarmProcess
) -> None:
    process = hung_step
    state = _stat(process.pid)
    assert process._starter is starter
    assert (state[2], state[3]) == (str(process.pid), str(process.pid))  # its group and session
    assert os.readlink(f"/proc/{process.pid}/cwd") == str(tmp_path)
    assert os.readlink(f"/proc/{process.pid}/fd/1") == str(tmp_path / "1.out")
    assert os.readlink(f"/proc/{process.pid}/fd/2") == str(tmp_path / "1.err")
    assert os.readlink(f"/proc/{process.pid}/fd/0") == os.devnull
    os.killpg(process.pid, signal.SIGTERM)
    _ended(process.pid)
    assert process.wait() == -signal.SIGTERM


def test_a_forked_step_s_exit_code_and_output_are_its_command_s(
    tmp_path: Path, starter: WarmStarter, step_env: dict[bytes, bytes]
) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"id": 1}))
    streams = [os.open(os.devnull, os.O_RDONLY)] + [
        os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT) for name in ("1.out", "1.err")
    ]
    try:
        valid = starter.start(
            [META, "step", "validate-node", "--schema=s.json"], step_env, str(tmp_path), streams
        )
        misused = starter.start(
            [META, "step", "validate-node", "--schema=none.json"], step_env, str(tmp_path), streams
        )
    finally:
        for stream in streams:
            os.close(stream)
    assert valid is not None and misused is not None
    time.sleep(1)  # Both have ended: unreaped, they are still there to be heard and waited for.
    for process in (valid, misused):
        _ended(process.pid)
    assert (valid.wait(), misused.wait()) == (0, 2)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["valid"] is True
    assert (tmp_path / "1.out").read_text() == "root /: valid\n"
    assert "cannot read the schema file none.json" in (tmp_path / "1.err").read_text()


def test_a_step_the_starter_cannot_give_its_interpreter_or_arguments_is_not_forked(
    starter: WarmStarter, step_env: dict[bytes, bytes]
) -> None:
    assert starter.takes(META, step_env)
    assert not starter.takes(META, {**step_env, b"PYTHONPATH": b"/elsewhere"})
    assert not starter.takes(META, {**step_env, b"LANG": b"fr_FR.UTF-8"})
    assert not starter.takes("/usr/local/bin/meta", step_env)
    long = [META, "step", "validate-node", "--summary", "x" * 100_000]
    assert starter.start(long, step_env, "/", [0, 1, 2]) is None  # exec'd: longer than it reads
    assert starter.ready()


def test_when_the_starter_is_killed_its_steps_are_waited_for_here_and_others_exec_d(
    tmp_path: Path, starter: WarmStarter, step_env: dict[bytes, bytes], hung_step: WarmProcess
) -> None:
    process = hung_step
    assert starter._process is not None
    os.kill(starter._process.pid, signal.SIGKILL)
    os.killpg(process.pid, signal.SIGTERM)
    _ended(process.pid)
    # Re-parented to this process (a child subreaper), it is reaped here.
    assert process.wait() == -signal.SIGTERM
    argv = [META, "step", "validate-node", "--summary"]
    assert starter.start(argv, step_env, str(tmp_path), [0, 1, 2]) is None
    assert not starter.ready()  # given up: the session's steps are exec'd
