"""The local runtime: every step a process group on this machine, with cluster semantics.

Layout (the workdir is durable; scratch lives on RAM where the machine has /dev/shm):

    WORKDIR/store/<unit id>/@outputs  persisted outputs of every finished unit (and section)
    WORKDIR/logs/<unit id>/<n>.out  stdout and stderr of attempt n
    SCRATCH/pods/<section id>/scratch    META_SCRATCH shared by one micro section's units
    SCRATCH/pods/<section id>/units/<unit id>/   a micro step's input.json, upstream/, out/
    SCRATCH/units/<unit id>/             a macro step's input.json, upstream/, scratch/

A micro section's units write their outputs into the section's RAM scratch and the next unit
reads them there through a symlink: no copy; each is persisted (copied) to the store when it
succeeds. A macro step writes straight into the store; the journal, not the folder, says whether
it finished. A consumer outside the producer's pod gets the outputs staged (copied) from the
store into its own scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
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


@dataclass(frozen=True)
class _Launch:
    """What starting a step produced: its process (or why it could not start) and its files."""

    process: subprocess.Popen[bytes] | None
    failed: Exit | None
    stderr: Path
    output: Path
    staged: int


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
        for directory in (self.store, self.logs, self.scratch / "units", self.scratch / "pods"):
            directory.mkdir(parents=True, exist_ok=True)

    def outputs(self, unit_id: str) -> str:
        return str(self._stored(unit_id))

    def _stored(self, unit_id: str) -> Path:
        # '@' is in no unit name, so a section's outputs never collide with its units' folders.
        return self.store / unit_id / OUTPUTS

    async def open_pod(self, pod: str) -> None:
        root = self.scratch / "pods" / pod
        (root / "scratch").mkdir(parents=True, exist_ok=True)
        self._pods[pod] = _Pod(root)

    async def close_pod(self, pod: str) -> None:
        closed = self._pods.pop(pod, None)
        if closed is not None:
            await asyncio.to_thread(shutil.rmtree, closed.root, True)

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        target = _emptied(self._stored(unit_id))
        for name, part in parts:
            os.symlink(os.path.relpath(self._stored(part), target), target / name)

    async def start(self, task: StepTask) -> LocalProcess:
        # The files and the fork happen on a worker thread: the event loop keeps scheduling
        # while a step is being set up, and steps start side by side as their slots allow.
        pod = self._pods.get(task.pod) if task.pod is not None else None
        launch = await asyncio.to_thread(self._launch, task, pod)
        self.traffic.staged += launch.staged
        if launch.process is not None:
            self._groups.add(launch.process.pid)
        return LocalProcess(self, task, launch, pod)

    def _launch(self, task: StepTask, pod: _Pod | None) -> _Launch:
        unit_dir = (pod.root / "units" if pod is not None else self.scratch / "units") / task.id
        upstream = _emptied(unit_dir / "upstream")
        if pod is not None:
            # A micro step writes into its pod's RAM scratch, shared with its siblings.
            output = _emptied(unit_dir / "out")
            scratch = pod.root / "scratch"
        else:
            # A macro step writes straight into the store; the journal, not the folder, says
            # whether it finished, and a new attempt starts from an empty folder.
            output = _emptied(self._stored(task.id))
            scratch = _emptied(unit_dir / "scratch")
        staged = 0
        for name, producer in task.upstream:
            live = pod.live.get(producer) if pod is not None else None
            if live is not None:
                os.symlink(live, upstream / name)
            else:
                staged += _copy_tree(self._stored(producer), upstream / name)
        input_file = unit_dir / "input.json"
        input_file.write_text(json.dumps(task.input, sort_keys=True), encoding="utf-8")
        env = {
            **self._environ,
            **task.env,
            "META_UNIT_ID": task.id,
            # Absolute: the step runs in its flow's directory, not where `meta` was started.
            "META_INPUT": os.path.abspath(input_file),
            "META_OUTPUT": os.path.abspath(output),
            "META_UPSTREAM": os.path.abspath(upstream),
            "META_SCRATCH": os.path.abspath(scratch),
            "META_ATTEMPT": str(task.attempt),
            RUN_TOKEN: self.token,
        }
        log_dir = self.logs / task.id
        log_dir.mkdir(parents=True, exist_ok=True)
        stderr_path = log_dir / f"{task.attempt}.err"
        with (
            (log_dir / f"{task.attempt}.out").open("wb") as stdout,
            stderr_path.open("wb") as stderr,
        ):
            try:
                process = subprocess.Popen(
                    task.command,
                    cwd=task.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
            except OSError as exc:
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                failed = Exit(code, f"cannot start {task.command[0]!r}: {exc.strerror}")
                return _Launch(None, failed, stderr_path, output, staged)
        return _Launch(process, None, stderr_path, output, staged)

    def _finish(self, task: StepTask, launch: _Launch, pod: _Pod | None, code: int) -> int:
        """After a step ended: persist its outputs when it succeeded, free its scratch; the
        bytes persisted."""
        persisted = 0
        if code == 0:
            target = self._stored(task.id)
            if pod is None:
                persisted = _size(target)
            else:
                persisted = _copy_tree(launch.output, _emptied(target))
        if pod is None:
            shutil.rmtree(self.scratch / "units" / task.id, ignore_errors=True)
        return persisted

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
        self, driver: LocalDriver, task: StepTask, launch: _Launch, pod: _Pod | None
    ) -> None:
        self._driver = driver
        self._task = task
        self._launch = launch
        self._pod = pod

    async def wait(self) -> Exit:
        process = self._launch.process
        if process is None:
            assert self._launch.failed is not None
            return self._launch.failed
        code = await _exited(process)
        self._end_group()
        persisted = await asyncio.to_thread(
            self._driver._finish, self._task, self._launch, self._pod, code
        )
        self._driver.traffic.persisted += persisted
        if code == 0 and self._pod is not None:
            self._pod.live[self._task.id] = self._launch.output
        return Exit(code, "" if code == 0 else _tail(self._launch.stderr))

    async def stop(self) -> None:
        process = self._launch.process
        if process is None or process.returncode is not None:
            self._end_group()
            return
        _kill_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_exited(process), STOP_GRACE_SECONDS)
        self._end_group()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_exited(process), STOP_GRACE_SECONDS)

    def _end_group(self) -> None:
        """The step's main process ended: whatever it left behind in its group goes too."""
        process = self._launch.process
        if process is not None:
            _kill_group(process.pid, signal.SIGKILL)
            self._driver.forget(process.pid)


async def _exited(process: subprocess.Popen[bytes]) -> int:
    """The exit code of `process`, awaited on a pidfd where the kernel has them (no thread, no
    polling), else on a worker thread."""
    if process.returncode is not None:
        return process.returncode
    try:
        descriptor = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        return await asyncio.to_thread(process.wait)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(descriptor, readable)
    try:
        await ended
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)
    return process.wait()


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


def _emptied(directory: Path) -> Path:
    """`directory`, created empty (whatever an earlier attempt left there is gone)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory
