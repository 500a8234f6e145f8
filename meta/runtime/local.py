"""The local runtime: every step a process group on this machine, with cluster semantics.

Layout (the workdir is durable; scratch lives on RAM where the machine has /dev/shm):

    WORKDIR/store/<unit id>/@outputs     the outputs of every finished unit (and section) that
                                         wrote any; a unit that wrote nothing has no folder
    WORKDIR/logs/<unit id>/<n>.out|.err  stdout and stderr of attempt n, when not empty
    SCRATCH/pods/<section id>/scratch    META_SCRATCH shared by one micro section's units
    SCRATCH/pods/<section id>/units/<n>/ a micro step attempt's input.json, upstream/, out/, logs
    SCRATCH/units/<n>/                   a macro step attempt's input.json, upstream/, scratch/,
                                         out/, logs (n counts the session's attempts)

A running step touches only RAM. A micro section's units write their outputs into the section's
scratch and the next unit reads them there through a symlink: no copy. A macro unit has its own
scratch. When a step succeeds its outputs are persisted (copied) to the store; a consumer
outside the producer's pod gets them staged (copied) from the store into its own scratch. The
journal, not the store, says which units finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from meta.engine.driver import Exit, StepTask

OUTPUTS = "@outputs"
CANNOT_KEEP = 125
"""The exit code of an attempt whose scratch could not be set up or whose outputs or logs
could not be kept (a full disk, an output that is a dangling link...)."""
MAX_RUNNING_STEPS = 512
"""Steps running at once beyond this wait for a thread (sections' maxActive bound them first)."""
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
    """Bytes copied into the store (persisted) and out of it into scratch (staged)."""

    persisted: int = 0
    staged: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, persisted: int = 0, staged: int = 0) -> None:
        with self._lock:
            self.persisted += persisted
            self.staged += staged


@dataclass
class _Pod:
    root: str
    live: dict[str, str] = field(default_factory=dict)
    """Outputs of this pod's finished units, still in its RAM scratch, by unit id."""


@dataclass(frozen=True)
class _Launch:
    """What starting a step produced: its process (or why it could not start) and its files."""

    process: subprocess.Popen[bytes] | None
    failed: Exit | None
    unit_dir: str
    output: str
    staged: int


class LocalDriver:
    def __init__(self, workdir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.store = workdir / "store"
        self.logs = workdir / "logs"
        self.scratch = scratch_root(workdir)
        self.traffic = Traffic()
        environ = dict(os.environ if environ is None else environ)
        # Steps find `meta` (built-in steps) and the Python it runs on first, as in an image
        # that has meta-orchestrator installed.
        tools = os.path.dirname(sys.executable)
        environ["PATH"] = os.pathsep.join([tools, environ.get("PATH", os.defpath)])
        self.token = self.scratch.name
        environ[RUN_TOKEN] = self.token
        # Encoded once: subprocess would encode every variable again for every step.
        self._environ = {os.fsencode(k): os.fsencode(v) for k, v in environ.items()}
        self._pods: dict[str, _Pod] = {}
        self._groups: set[int] = set()
        self._programs: dict[tuple[str, str], str] = {}
        self._attempts = itertools.count(1)
        self._devnull = os.open(os.devnull, os.O_RDONLY)
        """Every step's standard input, opened once rather than at every start."""
        # One thread per running step, as a thread-pool runner has; idle ones are reused.
        self.threads = ThreadPoolExecutor(MAX_RUNNING_STEPS, thread_name_prefix="step")
        kill_leftovers(self.token)
        shutil.rmtree(self.scratch, ignore_errors=True)
        for directory in (self.store, self.logs, self.scratch / "units", self.scratch / "pods"):
            directory.mkdir(parents=True, exist_ok=True)
        # Absolute: steps run in their flow's directory, not where `meta` was started.
        self._store = os.path.abspath(self.store)
        self._logs = os.path.abspath(self.logs)
        self._units = os.path.abspath(self.scratch / "units")

    def outputs(self, unit_id: str) -> str:
        # '@' is in no unit name, so a section's outputs never collide with its units' folders.
        return os.path.join(self._store, unit_id, OUTPUTS)

    async def open_pod(self, pod: str) -> None:
        root = os.path.abspath(self.scratch / "pods" / pod)
        os.makedirs(os.path.join(root, "scratch"), exist_ok=True)
        os.makedirs(os.path.join(root, "units"), exist_ok=True)
        self._pods[pod] = _Pod(root)

    async def close_pod(self, pod: str) -> None:
        closed = self._pods.pop(pod, None)
        if closed is not None:
            await asyncio.to_thread(shutil.rmtree, closed.root, True)

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        target = _emptied(self.outputs(unit_id))
        for name, part in parts:
            if os.path.isdir(self.outputs(part)):
                os.symlink(os.path.relpath(self.outputs(part), target), os.path.join(target, name))
            else:
                # A part that wrote nothing has no folder in the store: an empty one here.
                os.mkdir(os.path.join(target, name))

    async def start(self, task: StepTask) -> LocalProcess:
        pod = self._pods.get(task.pod) if task.pod is not None else None
        return LocalProcess(self, task, pod)

    def _launch(self, task: StepTask, pod: _Pod | None) -> _Launch:
        # Plain strings and os.path on this path: it runs once per step, on a worker thread
        # that shares the interpreter lock with the event loop. Everything a running step
        # touches is on RAM; the workdir's disk sees only what is kept (see `_finish`).
        units = os.path.join(pod.root, "units") if pod is not None else self._units
        # One new folder per attempt, named by a counter: no nesting to create, nothing an
        # earlier attempt left to clear (the whole scratch is new each session).
        unit_dir = os.path.join(units, str(next(self._attempts)))
        os.mkdir(unit_dir)
        upstream = os.path.join(unit_dir, "upstream")
        output = os.path.join(unit_dir, "out")
        os.mkdir(upstream)
        os.mkdir(output)
        if pod is not None:
            scratch = os.path.join(pod.root, "scratch")
        else:
            scratch = os.path.join(unit_dir, "scratch")
            os.mkdir(scratch)
        stored = self.outputs(task.id)
        if os.path.lexists(stored):
            # Left by an attempt that did not finish (a kill, a failure): not this one's.
            shutil.rmtree(stored, ignore_errors=True)
        staged = 0
        for name, producer in task.upstream:
            live = pod.live.get(producer) if pod is not None else None
            if live is not None:
                os.symlink(live, os.path.join(upstream, name))
            else:
                staged += _copy_tree(self.outputs(producer), os.path.join(upstream, name))
        input_file = os.path.join(unit_dir, "input.json")
        with open(input_file, "w", encoding="utf-8") as handle:
            json.dump(task.input, handle, sort_keys=True)
        env = {
            **self._environ,
            **{key.encode(): value.encode() for key, value in task.env.items()},
            b"META_UNIT_ID": task.id.encode(),
            b"META_INPUT": input_file.encode(),
            b"META_OUTPUT": output.encode(),
            b"META_UPSTREAM": upstream.encode(),
            b"META_SCRATCH": scratch.encode(),
            b"META_ATTEMPT": str(task.attempt).encode(),
        }
        stdout_path = os.path.join(unit_dir, f"{task.attempt}.out")
        stderr_path = os.path.join(unit_dir, f"{task.attempt}.err")
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            try:
                process = subprocess.Popen(
                    self._resolved(task.command, env),
                    cwd=task.workdir,
                    env=env,
                    stdin=self._devnull,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
            except OSError as exc:
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                failed = Exit(code, f"cannot start {task.command[0]!r}: {exc.strerror}")
                return _Launch(None, failed, unit_dir, output, staged)
        return _Launch(process, None, unit_dir, output, staged)

    def _resolved(self, command: Sequence[str], env: Mapping[bytes, bytes]) -> list[str]:
        """The command with its program found on the step's PATH once, not at every start."""
        program = command[0]
        if os.sep in program:
            return list(command)
        path = env[b"PATH"].decode()
        found = self._programs.get((program, path))
        if found is None:
            found = shutil.which(program, path=path) or program
            self._programs[(program, path)] = found
        return [found, *command[1:]]

    def _finish(self, task: StepTask, launch: _Launch, pod: _Pod | None, code: int) -> Exit:
        """After a step ended: keep its logs (those with anything in them) and, when it
        succeeded, persist its outputs (when it wrote any) to the workdir; free a macro
        step's scratch (a micro step's stays with its pod, for its siblings to read)."""
        unit_dir = launch.unit_dir
        stderr_tail = "" if code == 0 else _tail(os.path.join(unit_dir, f"{task.attempt}.err"))
        for stream in ("out", "err"):
            log = os.path.join(unit_dir, f"{task.attempt}.{stream}")
            if os.path.getsize(log):
                kept = os.path.join(self._logs, task.id)
                os.makedirs(kept, exist_ok=True)
                shutil.copyfile(log, os.path.join(kept, f"{task.attempt}.{stream}"))
        if code == 0:
            persisted = _copy_tree(launch.output, self.outputs(task.id), keep_empty=False)
            self.traffic.add(persisted=persisted)
            if pod is not None:
                pod.live[task.id] = launch.output
        if pod is None:
            _remove_unit_dir(unit_dir, task.attempt)
        return Exit(code, stderr_tail)

    def forget(self, pid: int) -> None:
        self._groups.discard(pid)

    def kill_all(self) -> None:
        """Kill every process group still running: nothing outlives the run."""
        for pid in list(self._groups):
            _kill_group(pid, signal.SIGKILL)
        self._groups.clear()

    def close(self) -> None:
        self.kill_all()
        self.threads.shutdown(wait=True, cancel_futures=True)
        os.close(self._devnull)
        shutil.rmtree(self.scratch, ignore_errors=True)


class LocalProcess:
    """One attempt at a step, carried by a worker thread from its set-up to its persisted
    outputs, as a thread-pool runner would: the event loop only schedules."""

    def __init__(self, driver: LocalDriver, task: StepTask, pod: _Pod | None) -> None:
        self._driver = driver
        self._task = task
        self._pod = pod
        self._pid: int | None = None
        self._stopping = False
        self._ended = asyncio.get_running_loop().run_in_executor(driver.threads, self._run)

    def _run(self) -> Exit:
        driver = self._driver
        try:
            launch = driver._launch(self._task, self._pod)
        except (OSError, shutil.Error) as exc:
            return Exit(CANNOT_KEEP, reason=f"its scratch could not be set up: {exc}")
        driver.traffic.add(staged=launch.staged)
        process = launch.process
        if process is None:
            assert launch.failed is not None
            if self._pod is None:
                _remove_unit_dir(launch.unit_dir, self._task.attempt)
            return launch.failed
        self._pid = process.pid
        driver._groups.add(process.pid)
        if self._stopping:
            _kill_group(process.pid, signal.SIGKILL)
        code = process.wait()
        # The step's main process ended: whatever it left behind in its group goes too.
        _kill_group(process.pid, signal.SIGKILL)
        driver.forget(process.pid)
        try:
            return driver._finish(self._task, launch, self._pod, code)
        except (OSError, shutil.Error) as exc:
            return Exit(
                CANNOT_KEEP,
                reason=f"exited with code {code}, but its outputs or logs could not be kept: {exc}",
            )

    async def wait(self) -> Exit:
        return await asyncio.shield(self._ended)

    async def stop(self) -> None:
        self._stopping = True
        if self._pid is not None and not self._ended.done():
            _kill_group(self._pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._ended), STOP_GRACE_SECONDS)
        if self._pid is not None:
            _kill_group(self._pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(self._ended), STOP_GRACE_SECONDS)


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


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - STDERR_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _size(path: str) -> int:
    """The bytes of the files under `path` (links followed, as a copy would)."""
    total = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir():
                total += _size(entry.path)
            elif entry.is_file():
                total += entry.stat().st_size
    return total


def _copy_tree(source: str, target: str, *, keep_empty: bool = True) -> int:
    """Copy a unit's outputs (following the links of combined outputs); the bytes copied.
    Empty outputs make an empty `target`, or with `keep_empty=False` none at all."""
    with contextlib.suppress(FileNotFoundError), os.scandir(source) as entries:
        if next(entries, None) is not None:
            shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)
            return _size(target)
    if keep_empty:
        os.makedirs(target, exist_ok=True)
    return 0


def _emptied(directory: str) -> str:
    """`directory`, created empty (whatever an earlier attempt left there is gone)."""
    try:
        os.mkdir(directory)
    except FileNotFoundError:
        os.makedirs(directory)
    except FileExistsError:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
    return directory


def _remove_unit_dir(unit_dir: str, attempt: int) -> None:
    """Remove a macro step's scratch: the files and folders `_launch` made, one call each when
    the step left them empty (the common case), a tree walk only for what holds more."""
    for name in ("input.json", f"{attempt}.out", f"{attempt}.err"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(unit_dir, name))
    for name in ("upstream", "scratch", "out", ""):
        folder = os.path.join(unit_dir, name)
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
