"""Helpers for the local runtime tests: flows written into tmp_path, `meta` run as a real process.

Step scripts are stdlib Python run with `sys.executable -S` (fast start). Every step that may
outlive its run writes its pid (and its children's) under PIDS, so a test can tell whether a
process is still alive and the teardown can kill whatever a test left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PY = sys.executable
_SCRIPT = Path(sys.executable).with_name("meta")
META: list[str] = (
    [str(_SCRIPT)] if _SCRIPT.exists() else [PY, "-c", "from meta.cli import main; main()"]
)

# A helper every step script can import (the flow file's directory is the step's cwd).
STEPLIB = r'''
import json, os, subprocess, sys, time
from pathlib import Path

UNIT = os.environ.get("META_UNIT_ID", "")
SAFE = UNIT.replace("/", "~")


def pids_dir():
    return Path(os.environ["T_PIDS"])


def note_pids(*pids):
    """Record pids of this step (and its children) under T_PIDS/<unit id>.<attempt>.<pid>."""
    d = pids_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{SAFE}.{os.getpid()}.tmp"
    tmp.write_text(" ".join(str(p) for p in pids))
    os.replace(tmp, d / f"{SAFE}.{os.environ.get('META_ATTEMPT', '0')}.{os.getpid()}")


def log_run():
    """Append this unit's id to T_LOG in a single write (O_APPEND): one line per run."""
    fd = os.open(os.environ["T_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (UNIT + "\n").encode())
    os.close(fd)


def spawn_grandchild_and_sleep():
    child = subprocess.Popen(["sleep", "1000"])
    note_pids(os.getpid(), child.pid)
    time.sleep(1000)
'''


TEST_VARIABLES = ("T_PIDS", "T_LOG")


def _with_test_env(unit: Any) -> Any:
    """`unit` with every step in it taking TEST_VARIABLES `fromEnv`."""
    if isinstance(unit, list):
        return [_with_test_env(item) for item in unit]
    if not isinstance(unit, dict):
        return unit
    copied = {key: _with_test_env(value) for key, value in unit.items()}
    run = copied.get("run")
    if isinstance(run, dict) and "command" in run:
        run["env"] = {**{v: {"fromEnv": v} for v in TEST_VARIABLES}, **run.get("env", {})}
    return copied


@dataclass
class Env:
    """Where a test keeps its flow, its pids and its run log."""

    root: Path
    pids: Path
    log: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def environ(self) -> dict[str, str]:
        return {**os.environ, "T_PIDS": str(self.pids), "T_LOG": str(self.log)}

    def flow(self, name: str, root: dict[str, Any], **spec: Any) -> Path:
        """Write a flow file (JSON is YAML) next to the step scripts; return its path. Every
        step takes T_PIDS and T_LOG from the test's environment (steps see nothing else of
        it)."""
        document = {
            "apiVersion": "meta-orchestrator.io/v1alpha1",
            "kind": "MetaFlow",
            "metadata": {"name": name},
            "spec": {**_with_test_env(spec), "root": _with_test_env(root)},
        }
        path = self.root / f"{name}.flow.yaml"
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")
        return path

    def script(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def meta(
        self, *args: str, timeout: float = 60, environ: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*META, *args],
            env={**self.environ(), **(environ or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )

    def start(self, *args: str, tag: str = "meta", nohup: bool = False) -> subprocess.Popen[bytes]:
        """`meta ARGS` in the background, its stdout/stderr in files (no pipe to fill up);
        with `nohup`, started with SIGHUP ignored, as `nohup` starts it."""
        out = (self.root / f"{tag}.out").open("wb")
        err = (self.root / f"{tag}.err").open("wb")
        with out, err:
            process = subprocess.Popen(
                [*META, *args],
                env=self.environ(),
                stdout=out,
                stderr=err,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=_ignore_hangup if nohup else None,
            )
        self.started.append(process)
        return process

    def recorded_pids(self) -> dict[str, list[int]]:
        """Pid files by name: `<unit id with ~>.<attempt>.<pid>` -> [step pid, children...]."""
        if not self.pids.is_dir():
            return {}
        return {
            p.name: [int(x) for x in p.read_text().split()]
            for p in self.pids.iterdir()
            if not p.name.startswith(".")
        }

    def all_pids(self) -> list[int]:
        return [pid for pids in self.recorded_pids().values() for pid in pids]

    def runs(self) -> list[str]:
        """The unit ids in the run log, one per run of a step, in order."""
        if not self.log.exists():
            return []
        return self.log.read_text().splitlines()


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def wait_gone(pids: Sequence[int], timeout: float = 3.0) -> list[int]:
    """Wait (briefly) for `pids` to end; the ones still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        living = [pid for pid in pids if alive(pid)]
        if not living or time.monotonic() > deadline:
            return living
        time.sleep(0.02)


def report(workdir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((workdir / "report.json").read_text())
    return document


def units_by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {unit["id"]: unit for unit in document["units"]}


def journal(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "journal.jsonl"
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    return [json.loads(line) for line in lines[:-1] if line]


def step(name: str, *argv: str, **extra: Any) -> dict[str, Any]:
    """A step running `python -S ARGV...` in the flow's directory."""
    return {"name": name, "run": {"command": [PY, "-S", *argv]}, **extra}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A fresh test area; any process a step recorded is killed at the end, whatever happened."""
    area = Env(tmp_path, tmp_path / "pids", tmp_path / "runs.log")
    (tmp_path / "steplib.py").write_text(STEPLIB, encoding="utf-8")
    yield area
    for process in area.started:
        if process.poll() is None:
            process.kill()
            process.wait()
    for pid in area.all_pids():
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def lock(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make `folder` unreadable as a folder of another user is (mode 0700) to one who is not
    root; chmod does not stop root, who runs these tests in CI."""
    real_stat, real_scandir = os.stat, os.scandir

    def refused(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            # The folder itself can be looked at, not listed; nothing in it can be reached.
            target = Path(os.path.abspath(os.fsdecode(path)))
            inside = target.is_relative_to(folder) and target != folder
            if inside or (real is real_scandir and target == folder):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "stat", refused(real_stat))
    monkeypatch.setattr(os, "scandir", refused(real_scandir))


def a_run(workdir: Path) -> Path:
    """An ended run's workdir: its run record and a report of a failure."""
    workdir.mkdir(parents=True)
    (workdir / "run.json").write_text(json.dumps({"flow": "/f.yaml", "startedAt": 1.0}))
    (workdir / "report.json").write_text(json.dumps({"flow": "f", "state": "failed", "units": []}))
    return workdir


def _ignore_hangup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
