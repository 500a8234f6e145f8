"""The local runtime: every step a process group on this machine, with cluster semantics.

Layout (the workdir is durable; scratch lives on RAM where the machine has /dev/shm):

    WORKDIR/store/<unit id>/@outputs  persisted outputs of every finished unit (and section)
    WORKDIR/logs/<unit id>/<n>.out  stdout and stderr of attempt n
    SCRATCH/pods/<section id>/scratch    META_SCRATCH shared by one micro section's units
    SCRATCH/pods/<section id>/units/<unit id>/   a micro step's input.json, upstream/, out/
    SCRATCH/units/<unit id>/             a macro step's input.json, upstream/, scratch/

A micro section's units write their outputs into the section's RAM scratch and the next unit
reads them there through a symlink: no copy. A macro step writes straight into the store (a
rename makes it final). A consumer outside the producer's pod gets the outputs staged (copied)
from the store into its own scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meta.engine.driver import Exit, StepTask

OUTPUTS = "@outputs"
RUN_TOKEN = "META_RUN_TOKEN"
STOP_GRACE_SECONDS = 2.0
STDERR_TAIL_BYTES = 2000


def scratch_root(workdir: Path) -> Path:
    """RAM scratch for one workdir: the same path across sessions, so a resume can clear it."""
    base = (
        Path("/dev/shm")
        if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK)
        else workdir
    )
    digest = hashlib.sha1(str(workdir.resolve()).encode()).hexdigest()[:12]
    return base / f"meta-{digest}"


@dataclass
class Traffic:
    persisted: int = 0
    staged: int = 0


@dataclass
class _Pod:
    root: Path
    live: dict[str, Path] = field(default_factory=dict)
    """Outputs of this pod's finished units, still in its RAM scratch, by unit id."""


class LocalDriver:
    def __init__(self, workdir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.store = workdir / "store"
        self.logs = workdir / "logs"
        self.scratch = scratch_root(workdir)
        self.traffic = Traffic()
        self._environ = dict(os.environ if environ is None else environ)
        # Steps find `meta` (built-in steps) and the Python it runs on first, as in an image
        # that has meta-orchestrator installed.
        tools = os.path.dirname(sys.executable)
        self._environ["PATH"] = os.pathsep.join([tools, self._environ.get("PATH", os.defpath)])
        self._pods: dict[str, _Pod] = {}
        self._groups: set[int] = set()
        self.token = self.scratch.name
        kill_leftovers(self.token)
        shutil.rmtree(self.scratch, ignore_errors=True)
        for directory in (
            self.store / ".partial",
            self.logs,
            self.scratch / "units",
            self.scratch / "pods",
        ):
            directory.mkdir(parents=True, exist_ok=True)

    def outputs(self, unit_id: str) -> str:
        return str(self._stored(unit_id))

    def _stored(self, unit_id: str) -> Path:
        # '@' is in no unit name, so a section's outputs never collide with its units' folders.
        return self.store / unit_id / OUTPUTS

    def _partial(self, unit_id: str) -> Path:
        return self.store / ".partial" / unit_id / OUTPUTS

    async def open_pod(self, pod: str) -> None:
        root = self.scratch / "pods" / pod
        (root / "scratch").mkdir(parents=True, exist_ok=True)
        self._pods[pod] = _Pod(root)

    async def close_pod(self, pod: str) -> None:
        closed = self._pods.pop(pod, None)
        if closed is not None:
            await asyncio.to_thread(shutil.rmtree, closed.root, True)

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        target = self._stored(unit_id)
        partial = self._partial(unit_id)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name, part in parts:
            # Relative to where the links end up (`target`), not to `partial`, one level deeper.
            os.symlink(os.path.relpath(self._stored(part), target), partial / name)
        _replace(partial, target)

    async def start(self, task: StepTask) -> LocalProcess:
        pod = self._pods.get(task.pod) if task.pod is not None else None
        unit_dir = (pod.root / "units" if pod is not None else self.scratch / "units") / task.id
        if pod is not None:
            output = unit_dir / "out"
            scratch = pod.root / "scratch"
        else:
            output = self._partial(task.id)
            scratch = unit_dir / "scratch"
        upstream = unit_dir / "upstream"
        # A micro step's scratch is its pod's, shared with its siblings: never cleared here.
        for directory in (output,) if pod is not None else (output, scratch):
            shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(upstream, ignore_errors=True)
        for directory in (output, scratch, upstream):
            directory.mkdir(parents=True, exist_ok=True)
        staged = await self._gather_upstream(task, pod, upstream)
        self.traffic.staged += staged
        input_file = unit_dir / "input.json"
        input_file.write_text(json.dumps(task.input, sort_keys=True), encoding="utf-8")
        env = {
            **self._environ,
            **task.env,
            "META_UNIT_ID": task.id,
            "META_INPUT": str(input_file),
            "META_OUTPUT": str(output),
            "META_UPSTREAM": str(upstream),
            "META_SCRATCH": str(scratch),
            "META_ATTEMPT": str(task.attempt),
            RUN_TOKEN: self.token,
        }
        log_dir = self.logs / task.id
        log_dir.mkdir(parents=True, exist_ok=True)
        stdout_path = log_dir / f"{task.attempt}.out"
        stderr_path = log_dir / f"{task.attempt}.err"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            try:
                process = await asyncio.create_subprocess_exec(
                    *task.command,
                    cwd=task.workdir,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
            except OSError as exc:
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                return LocalProcess(
                    self,
                    task,
                    None,
                    stderr_path,
                    output,
                    pod,
                    Exit(code, f"cannot start {task.command[0]!r}: {exc.strerror}"),
                )
        self._groups.add(process.pid)
        return LocalProcess(self, task, process, stderr_path, output, pod)

    async def _gather_upstream(self, task: StepTask, pod: _Pod | None, upstream: Path) -> int:
        staged = 0
        for name, producer in task.upstream:
            live = pod.live.get(producer) if pod is not None else None
            if live is not None:
                os.symlink(live, upstream / name)
            else:
                staged += await asyncio.to_thread(
                    _copy_tree, self._stored(producer), upstream / name
                )
        return staged

    async def persist(self, task: StepTask, output: Path, pod: _Pod | None) -> None:
        target = self._stored(task.id)
        if pod is None:
            self.traffic.persisted += await asyncio.to_thread(_finalise, output, target)
            return
        partial = self._partial(task.id)
        shutil.rmtree(partial, ignore_errors=True)
        self.traffic.persisted += await asyncio.to_thread(_copy_tree, output, partial)
        _replace(partial, target)
        pod.live[task.id] = output

    def release(self, task: StepTask, pod: _Pod | None) -> None:
        """A macro step's scratch goes when it ends; a micro step's stays until its pod closes."""
        if pod is None:
            shutil.rmtree(self.scratch / "units" / task.id, ignore_errors=True)

    def forget(self, pid: int) -> None:
        self._groups.discard(pid)

    def kill_all(self) -> None:
        """Kill every process group still running: nothing outlives the run."""
        for pid in list(self._groups):
            _kill_group(pid, signal.SIGKILL)
        self._groups.clear()

    def close(self) -> None:
        self.kill_all()
        shutil.rmtree(self.scratch, ignore_errors=True)


class LocalProcess:
    def __init__(
        self,
        driver: LocalDriver,
        task: StepTask,
        process: asyncio.subprocess.Process | None,
        stderr_path: Path,
        output: Path,
        pod: _Pod | None,
        failed: Exit | None = None,
    ) -> None:
        self._driver = driver
        self._task = task
        self._process = process
        self._stderr_path = stderr_path
        self._output = output
        self._pod = pod
        self._failed = failed

    async def wait(self) -> Exit:
        if self._process is None:
            assert self._failed is not None
            return self._failed
        code = await self._process.wait()
        self._end_group()
        if code == 0:
            await self._driver.persist(self._task, self._output, self._pod)
        self._driver.release(self._task, self._pod)
        return Exit(code, "" if code == 0 else _tail(self._stderr_path))

    async def stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            self._end_group()
            return
        _kill_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        self._end_group()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)

    def _end_group(self) -> None:
        """The step's main process ended: whatever it left behind in its group goes too."""
        if self._process is not None:
            _kill_group(self._process.pid, signal.SIGKILL)
            self._driver.forget(self._process.pid)


def kill_leftovers(token: str) -> None:
    """Kill the process groups a killed earlier session of this workdir left running.

    Every step runs with the workdir's token in its environment; a process still holding it
    when a new session starts belongs to a run that died (say by `kill -9`) and would race the
    resumed run for the same outputs.
    """
    marker = f"{RUN_TOKEN}={token}".encode()
    processes = Path("/proc")
    if not processes.is_dir():
        return
    for entry in processes.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(int(entry.name)), signal.SIGKILL)


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - STDERR_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _copy_tree(source: Path, target: Path) -> int:
    """Copy a unit's outputs (following the links of combined outputs); the bytes copied."""
    if not source.exists():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)
    return _size(target)


def _finalise(partial: Path, target: Path) -> int:
    _replace(partial, target)
    return _size(target)


def _replace(partial: Path, target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
