"""The warm starter: `meta step` programs forked from a process that has loaded them
(meta.local.warm, meta.cli.warm), as processes of their own, with the results exec'd ones give."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
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
    leaves: list[dict[str, Any]] = [{"id": n} for n in range(2, 8)]
    leaves[3] = {"id": "five"}
    return {"id": 0, "children": [{"id": 1, "children": leaves}]}


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the steps warm starters forked."""
    pids: list[int] = []
    ask = WarmStarter.ask

    def spied(
        self: WarmStarter, argv: Any, env: Any, cwd: Any, streams: Any, answered: Any
    ) -> bool:
        def told(process: WarmProcess | None) -> None:
            if process is not None:
                pids.append(process.pid)
            answered(process)

        return ask(self, argv, env, cwd, streams, told)

    monkeypatch.setattr(WarmStarter, "ask", spied)
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
    # The second step starts the warm starter; those that start before it is ready are exec'd.
    assert 1 <= len(forked) <= 6
    count = len(forked)
    monkeypatch.setenv(warm_module.SWITCH, "off")
    cold_result, cold_reports = _run(tmp_path, "cold")
    assert len(forked) == count  # none, with META_WARM_START=off
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


async def _ready_starter(env: dict[bytes, bytes]) -> WarmStarter:
    starter = WarmStarter(META, env, asyncio.get_running_loop())
    deadline = time.monotonic() + 60
    while not starter._ready:
        assert time.monotonic() < deadline, "the warm starter never said it was ready"
        await asyncio.sleep(0.01)
    return starter


async def _fork(
    starter: WarmStarter, argv: list[str], env: dict[bytes, bytes], cwd: Path, streams: list[int]
) -> WarmProcess | None:
    """The step forked (None: refused, to be exec'd); the streams are closed."""
    try:
        answer: asyncio.Future[WarmProcess | None] = asyncio.get_running_loop().create_future()
        if not starter.ask(argv, env, str(cwd), streams, answer.set_result):
            return None
        return await answer
    finally:
        for stream in streams:
            os.close(stream)


def _streams(folder: Path, attempt: int = 1) -> list[int]:
    return [os.open(os.devnull, os.O_RDONLY)] + [
        os.open(folder / f"{attempt}.{stream}", os.O_WRONLY | os.O_CREAT)
        for stream in ("out", "err")
    ]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command's name: state, ppid, pgrp, session..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


async def _hung_step(tmp_path: Path, starter: WarmStarter, env: dict[bytes, bytes]) -> WarmProcess:
    """A forked step that waits for ever: it reads its data from a FIFO no one writes."""
    fifo = tmp_path / "data.json"
    os.mkfifo(fifo)
    argv = [META, "step", "validate-node", "--schema=s.json", f"--data={fifo.name}"]
    process = await _fork(starter, argv, env, tmp_path, _streams(tmp_path))
    assert process is not None
    deadline = time.monotonic() + 30
    # Its streams, and none of the starter's descriptors: what it takes before its command
    # runs (its folder is the starter's already).
    while not _streams_only(process.pid, tmp_path / "1.err"):
        assert time.monotonic() < deadline, "the step never took its streams"
        await asyncio.sleep(0.01)
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


@contextlib.asynccontextmanager
async def _hung(
    tmp_path: Path, env: dict[bytes, bytes]
) -> AsyncIterator[tuple[WarmStarter, WarmProcess]]:
    """A ready warm starter and a step it forked that hangs; both ended at the end."""
    starter = await _ready_starter(env)
    process = await _hung_step(tmp_path, starter, env)
    try:
        yield starter, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        starter.close()


def test_a_forked_step_is_a_process_of_its_own_and_stops_as_one(
    tmp_path: Path, step_env: dict[bytes, bytes]
) -> None:
    async def scenario() -> None:
        async with _hung(tmp_path, step_env) as (starter, process):
            state = _stat(process.pid)
            assert state[1] == str(starter._process.pid if starter._process else None)
            assert (state[2], state[3]) == (str(process.pid), str(process.pid))  # group, session
            assert os.readlink(f"/proc/{process.pid}/cwd") == str(tmp_path)
            assert os.readlink(f"/proc/{process.pid}/fd/1") == str(tmp_path / "1.out")
            assert os.readlink(f"/proc/{process.pid}/fd/0") == os.devnull
            os.killpg(process.pid, signal.SIGTERM)
            _ended(process.pid)
            assert process.wait() == -signal.SIGTERM

    asyncio.run(scenario())


def test_a_forked_step_s_exit_code_and_output_are_its_command_s(
    tmp_path: Path, step_env: dict[bytes, bytes]
) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"id": 1}))

    async def scenario() -> None:
        starter = await _ready_starter(step_env)
        try:
            valid = await _fork(
                starter,
                [META, "step", "validate-node", "--schema=s.json", "--help"],
                step_env,
                tmp_path,
                _streams(tmp_path),
            )
            misused = await _fork(
                starter,
                [META, "step", "validate-node", "--schema=none.json"],
                step_env,
                tmp_path,
                _streams(tmp_path, 2),
            )
            assert valid is not None and misused is not None
            # Both end soon: unreaped, they are still there to be heard and waited for.
            await asyncio.sleep(1)
            for process in (valid, misused):
                _ended(process.pid)
            assert (valid.wait(), misused.wait()) == (0, 2)
        finally:
            starter.close()

    asyncio.run(scenario())
    assert (tmp_path / "1.out").read_text().startswith("usage: meta step validate-node")
    # The help the warm starter's own reading of those arguments printed is not in the next.
    assert (tmp_path / "2.out").read_text() == ""
    assert "cannot read the schema file none.json" in (tmp_path / "2.err").read_text()


def test_only_a_step_of_this_meta_with_the_starter_s_environment_is_forked(
    tmp_path: Path, step_env: dict[bytes, bytes]
) -> None:
    async def scenario() -> None:
        starter = await _ready_starter(step_env)
        try:
            assert starter.takes(META, {**step_env, b"META_UNIT_ID": b"flow/a"})
            for variable in (b"PYTHONPATH", b"LANG", b"LD_PRELOAD", b"ANYTHING"):
                assert not starter.takes(META, {**step_env, variable: b"/elsewhere"})
            assert not starter.takes("/usr/local/bin/meta", step_env)
            long = [META, "step", "validate-node", "--summary", "x" * 100_000]
            assert await _fork(starter, long, step_env, tmp_path, _streams(tmp_path)) is None
            assert starter._ready  # that one is exec'd (longer than it reads); others are not
        finally:
            starter.close()

    asyncio.run(scenario())


def test_when_the_starter_is_killed_its_steps_are_waited_for_here_and_others_exec_d(
    tmp_path: Path, step_env: dict[bytes, bytes]
) -> None:
    async def scenario() -> None:
        async with _hung(tmp_path, step_env) as (starter, process):
            assert starter._process is not None
            os.kill(starter._process.pid, signal.SIGKILL)
            os.killpg(process.pid, signal.SIGTERM)
            _ended(process.pid)
            # Re-parented to this process (a child subreaper), it is reaped here.
            assert process.wait() == -signal.SIGTERM
            await asyncio.sleep(0.5)  # the loop hears the warm starter's end
            argv = [META, "step", "validate-node", "--summary"]
            assert await _fork(starter, argv, step_env, tmp_path, _streams(tmp_path)) is None
            assert not starter._ready  # given up: the session's steps are exec'd

    asyncio.run(scenario())


def _sequence(folder: Path, name: str, pause: int, held: str) -> None:
    """A flow `flow.yaml` in `folder`: two built-in steps (the first exec'd, the second starts
    the warm starter), `sleep PAUSE` (it gets ready), then the step `held` (YAML), forked."""
    (folder / "s.json").write_text(json.dumps(SCHEMA))
    (folder / "ok.json").write_text(json.dumps({"id": 1}))
    check = "[meta, step, validate-node, --schema=s.json, --data=ok.json]"
    (folder / "flow.yaml").write_text(
        "apiVersion: meta-orchestrator.io/v1alpha1\nkind: MetaFlow\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  root:\n    name: top\n    scope: macro\n    pattern: sequence\n    units:\n"
        f"      - {{name: first, run: {{command: {check}}}}}\n"
        f"      - {{name: second, run: {{command: {check}}}}}\n"
        f'      - {{name: pause, run: {{command: [sleep, "{pause}"]}}}}\n'
        f"      - {held}\n"
    )


def test_meta_logs_follows_a_forked_step_while_it_runs(tmp_path: Path) -> None:
    """Its environment, as /proc shows it, is the warm starter's: it is found by its log."""
    held = "{name: held, run: {command: [meta, step, validate-node, --schema=s.json, --data=fifo]}}"
    _sequence(tmp_path, "followed", 2, held)
    os.mkfifo(tmp_path / "fifo")
    run = subprocess.Popen(
        [META, "run", "flow.yaml", "--workdir", "w"], cwd=tmp_path, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        # The held step, forked, waits for a writer of the FIFO once it runs.
        while not _reads_fifo(tmp_path / "fifo"):
            assert time.monotonic() < deadline, "the held step never started"
            time.sleep(0.05)
        follow = subprocess.Popen(
            [META, "logs", "w", "held", "--follow"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(1)
        assert follow.poll() is None, "it follows while the step runs"
        (tmp_path / "fifo").write_text(json.dumps({"id": 2}))
        out, err = follow.communicate(timeout=30)
        assert (follow.returncode, out, err) == (0, b"root /: valid\n", b"")
        assert run.wait(timeout=30) == 0
    finally:
        _release(tmp_path / "fifo")
        run.terminate()  # the session stops its steps
        run.wait()


def _release(fifo: Path) -> None:
    """End a step still waiting for a writer of `fifo` (it reads nothing: end of file)."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def _reads_fifo(fifo: Path) -> bool:
    """Whether a process of the warm starter's (a forked step) in the folder of `fifo` waits
    for a writer of a FIFO: the held step, opening it."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if (
                b"warm-starter" in Path(f"/proc/{pid}/cmdline").read_bytes()
                and os.readlink(f"/proc/{pid}/cwd") == str(fifo.parent)
                and Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"
            ):
                return True
    return False


def test_a_step_the_warm_starter_is_late_for_is_exec_d(tmp_path: Path) -> None:
    """Stopped (SIGSTOP) before a step is asked of it, it never answers: the step waits a
    second for it, and is exec'd; the session ends without waiting for it either."""
    held = (
        "{name: held, timeoutSeconds: 5, run: {command: "
        "[meta, step, validate-node, --schema=s.json, --data=ok.json]}}"
    )
    _sequence(tmp_path, "stalled", 4, held)
    started = time.monotonic()
    run = subprocess.Popen([META, "run", "flow.yaml", "--workdir", "w"], cwd=tmp_path)
    try:
        starter = None
        while starter is None:
            assert time.monotonic() - started < 30, "no warm starter was started"
            starter = _warm_starter(run.pid)
            time.sleep(0.05)
        time.sleep(1.5)  # loaded, and ready, while `pause` runs
        os.kill(starter, signal.SIGSTOP)
        assert run.wait(timeout=20) == 0
    finally:
        run.kill()
        run.wait()
    assert time.monotonic() - started < 15
    units = json.loads((tmp_path / "w" / "report.json").read_text())["units"]
    held = next(unit for unit in units if unit["id"].endswith("/held"))
    assert held["state"] == "succeeded", held
    assert held["finishedAt"] - held["startedAt"] < 4


def _warm_starter(parent: int) -> int | None:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if (
                _stat(int(pid))[1] == str(parent)
                and b"warm-starter" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ):
                return int(pid)
    return None


WRAPPED = """\
apiVersion: meta-orchestrator.io/v1alpha1
kind: MetaFlow
metadata: {{name: wrapped}}
spec:
  root:
    name: top
    scope: macro
    pattern: sequence
    units:
      - {{name: a, run: {{command: [{meta}, step, validate-node, --schema=s.json]}}}}
      - {{name: b, run: {{command: [{meta}, step, validate-node, --schema=s.json]}}}}
      - {{name: c, run: {{command: [sleep, "1"]}}}}
      - {{name: d, run: {{command: [{meta}, step, validate-node, --schema=s.json]}}}}
"""


def test_a_program_of_the_user_s_named_meta_is_exec_d_as_written(tmp_path: Path) -> None:
    wrapper = tmp_path / "meta"
    (tmp_path / "flow.yaml").write_text(WRAPPED.format(meta=wrapper))
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "ok.json").write_text(json.dumps({"id": 1}))
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> calls.log\nexec {META} "$@"\n')
    wrapper.chmod(0o755)
    done = subprocess.run(
        [META, "run", "flow.yaml", "--workdir", "w"], cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls == ["step validate-node --schema=s.json"] * 3
