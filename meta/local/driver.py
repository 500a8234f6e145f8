"""The local runtime: every step a process group on this machine, with cluster semantics.

Layout (the workdir is durable; scratch lives on RAM where the machine has /dev/shm):

    WORKDIR/store/<unit id>/@outputs          the outputs of every finished unit (and
                                              section) that wrote any; a unit that wrote
                                              nothing has no folder
    WORKDIR/logs/<unit id>/<n>.out|.err       stdout and stderr of attempt n, when not empty
    SCRATCH/pods/<section id>/scratch         META_SCRATCH shared by one micro section's units
    SCRATCH/pods/<section id>/units/<k>-<tag> a micro step attempt's input.json, result.json
                                              (META_RESULT), upstream/, out/, logs
    SCRATCH/units/<k>-<tag>                   a macro step attempt's input.json, result.json,
                                              upstream/, scratch/, out/, logs
    SCRATCH/owner.json                        the session using it (pid, start, workdir), so
                                              that `meta clean` can tell scratch a killed
                                              session left

k counts the session's attempts (of all units); tag is `unit_tag` of the attempt's unit id.

A running step touches only RAM. A micro section's units write their outputs into the section's
scratch and the next unit reads them there through a symlink: no copy. A macro unit has its own
scratch. When a step succeeds its outputs are persisted (copied) to the store; a consumer
outside the producer's pod gets them staged (copied) from the store into its own scratch. The
journal, not the store, says which units finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import itertools
import json
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from meta.engine.driver import Exit, StepTask
from meta.engine.results import RESULT_FILE, ResultRefused, open_regular, read_result
from meta.local.environment import Secrets, base_environ, missing_source, resolve
from meta.local.logtrim import LogTrimmer
from meta.local.reaper import Children, become_subreaper, stop_orphans
from meta.local.warm import Answered, WarmProcess, WarmStarter, own_meta, warm_start_allowed
from meta.trees import Manifest, OutputRefused, copy_tree, remove_tree

OUTPUTS = "@outputs"
STORE = "store"
LOGS = "logs"
MAX_ARG_STRLEN = 131072
"""The longest argument or environment variable Linux passes to a program (32 pages)."""
CANNOT_KEEP = 125
"""The exit code of an attempt whose scratch could not be set up or whose outputs or logs
could not be kept (a full disk, an output that is a dangling link...)."""
MAX_RUNNING_STEPS = 512
"""Steps running at once beyond this wait for a thread (sections' maxActive bound them first)."""
RUN_TOKEN = "META_RUN_TOKEN"
OWNER_FILE = "owner.json"
STOP_GRACE_SECONDS = 2.0
STDERR_TAIL_BYTES = 2000
MAX_NAME = 200
"""The longest name of a unit id kept as it is on disk (file systems allow 255 bytes)."""
LOG_PART_BYTES = 1 << 20
"""Of a longer log, the bytes kept from its start and from its end."""
_ENCODE_INPUT = json.JSONEncoder(sort_keys=True).encode
"""`json.dumps(..., sort_keys=True)` without building an encoder for every step."""
_blake2b = hashlib.blake2b
"""The quickest of hashlib's digests of a short text here (0.5 µs; SHA-1 0.7)."""


def scratch_root(workdir: Path) -> Path:
    """RAM scratch for one workdir: the same path across sessions, so a resume can clear it."""
    base = (
        Path("/dev/shm")
        if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK)
        else workdir
    )
    digest = hashlib.sha1(str(workdir.resolve()).encode()).hexdigest()[:12]
    return base / f"meta-{digest}"


def unit_tag(unit_id: str) -> str:
    """What ends the name of a step attempt's scratch folder (`<attempt>-<tag>`): a digest of
    its unit id, so that a reader (`meta ui`) finds a running attempt's input.json from the
    unit's id alone, while the session's attempt counter keeps each attempt's folder new and
    every folder one level deep. Computed, not looked up: no system call added to a step."""
    return _blake2b(unit_id.encode(), digest_size=6).hexdigest()


@dataclass(eq=False)
class Traffic:
    """Bytes copied into the store (persisted) and out of it into scratch (staged)."""

    persisted: int = 0
    staged: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, persisted: int = 0, staged: int = 0) -> None:
        with self._lock:
            self.persisted += persisted
            self.staged += staged


@dataclass(eq=False)
class _Pod:
    root: str
    live: dict[str, str] = field(default_factory=dict)
    """Outputs of this pod's finished units, still in its RAM scratch, by unit id."""


@dataclass(frozen=True, eq=False)
class _Scratch:
    """The folders and files of one attempt, made on RAM before its program starts."""

    unit_dir: str
    input_file: str
    upstream: str
    output: str
    scratch: str
    copies: tuple[tuple[str, str], ...]
    """(stored outputs, upstream folder) still to be staged: producers outside its pod."""
    result: str
    stdout: str
    stderr: str
    """The attempt's logs (named by its number, as they are kept)."""


class LocalDriver:
    def __init__(
        self,
        workdir: Path,
        environ: Mapping[str, str] | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        """`environ` is `meta`'s own environment (steps see only what `base_environ` takes
        of it, and the variables they take `fromEnv`); `secrets` gives `secretRef`s values."""
        self.workdir = workdir
        self.store = workdir / STORE
        self.logs = workdir / LOGS
        self.scratch = scratch_root(workdir)
        self.traffic = Traffic()
        self._outer = dict(os.environ if environ is None else environ)
        self.secrets = secrets or Secrets()
        base = base_environ(self._outer)
        self.token = self.scratch.name
        base[RUN_TOKEN] = self.token
        # Encoded once: subprocess would encode every variable again for every step.
        self._environ = {os.fsencode(k): os.fsencode(v) for k, v in base.items()}
        self._pods: dict[str, _Pod] = {}
        self._manifests: dict[str, Manifest] = {}
        """What each step that succeeded in this session kept, until the journal takes it."""
        self._combined: set[str] = set()
        """Store folders of sections with several results: links to their parts' outputs."""
        self._groups: set[int] = set()
        self._programs: dict[tuple[str, str], str] = {}
        self._attempts = itertools.count(1)
        self._devnull = os.open(os.devnull, os.O_RDONLY)
        """Every step's standard input, opened once rather than at every start."""
        # One thread per running step, as a thread-pool runner has; idle ones are reused.
        self.threads = ThreadPoolExecutor(MAX_RUNNING_STEPS, thread_name_prefix="step")
        self._exits = _Exits()
        self.logs_in_ram = LogTrimmer(LOG_PART_BYTES)
        self.closed = False
        """The session is ending: steps whose data is still being staged do not start."""
        self.subreaper = become_subreaper()
        self._children = Children() if self.subreaper else None
        self._may_warm_start = self.subreaper and warm_start_allowed(self._outer)
        self._warm: WarmStarter | None = None
        """Forks `meta step` programs (meta.local.warm), from the second one on."""
        self._warm_candidates = 0
        _more_descriptors()
        kill_leftovers(self.token)
        remove_tree(str(self.scratch))
        for directory in (self.store, self.logs, self.scratch / "units", self.scratch / "pods"):
            directory.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "at": time.time(), "workdir": str(workdir.resolve())}
        (self.scratch / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
        # Absolute: steps run in their flow's directory, not where `meta` was started.
        self._store = os.path.abspath(self.store)
        self._logs = os.path.abspath(self.logs)
        self._units = os.path.abspath(self.scratch / "units")

    def outputs(self, unit_id: str) -> str:
        # '@' is in no unit name, so a section's outputs never collide with its units' folders.
        # Joined with "/": the store is absolute and a unit id is relative, never empty.
        return f"{self._store}/{on_disk(unit_id)}/{OUTPUTS}"

    def shown_outputs(self, unit_id: str) -> str:
        """`outputs` as the report and the summary show it: under the workdir as given."""
        return os.path.join(self.store, on_disk(unit_id), OUTPUTS)

    async def open_pod(self, pod: str) -> None:
        root = os.path.abspath(self.scratch / "pods" / on_disk(pod))
        os.makedirs(os.path.join(root, "scratch"), exist_ok=True)
        os.makedirs(os.path.join(root, "units"), exist_ok=True)
        self._pods[pod] = _Pod(root)

    async def close_pod(self, pod: str) -> None:
        closed = self._pods.pop(pod, None)
        if closed is not None:
            await asyncio.to_thread(remove_tree, closed.root)

    def restored(self, unit_id: str, manifest: Manifest | None) -> None:
        """A unit's outputs were put in the store from the cache (what the journal records)."""
        if manifest is not None:
            self._manifests[unit_id] = manifest

    def take_manifest(self, unit_id: str) -> Manifest | None:
        """What a step that succeeded in this session kept in the store (None: nothing)."""
        return self._manifests.pop(unit_id, None)

    def combine(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        target = _emptied(self.outputs(unit_id))
        self._combined.add(os.path.realpath(target))
        for name, part in parts:
            if os.path.isdir(self.outputs(part)):
                os.symlink(os.path.relpath(self.outputs(part), target), os.path.join(target, name))
            else:
                # A part that wrote nothing has no folder in the store: an empty one here.
                os.mkdir(os.path.join(target, name))

    async def start(self, task: StepTask) -> LocalProcess:
        pod = self._pods.get(task.pod) if task.pod is not None else None
        return LocalProcess(self, task, pod)

    def _prepare(self, task: StepTask, pod: _Pod | None) -> _Scratch:
        """Make an attempt's folders, link what its pod has live and write its input; the
        outputs to copy in from the store are left to `_stage`."""
        # Plain strings and os.path on this path: it runs once per step, on the event loop.
        # Everything it touches is on RAM; the workdir's disk sees only what is kept.
        units = os.path.join(pod.root, "units") if pod is not None else self._units
        # One new folder per attempt, named by a counter: no nesting to create, nothing an
        # earlier attempt left to clear (the whole scratch is new each session); its unit's
        # tag lets readers find it. Paths are joined with "/" (all of these are absolute and
        # plain): os.path.join costs more.
        unit_dir = f"{units}/{next(self._attempts)}-{unit_tag(task.id)}"
        os.mkdir(unit_dir)
        upstream = unit_dir + "/upstream"
        output = unit_dir + "/out"
        os.mkdir(upstream)
        os.mkdir(output)
        if pod is not None:
            scratch = pod.root + "/scratch"
        else:
            scratch = unit_dir + "/scratch"
            os.mkdir(scratch)
        stored = self.outputs(task.id)
        if os.path.lexists(stored):
            # Left by an attempt that did not finish (a kill, a failure): not this one's.
            remove_tree(stored)
        copies = []
        for name, producer in task.upstream:
            target = f"{upstream}/{name}"
            live = pod.live.get(producer) if pod is not None else None
            if live is not None:
                os.symlink(live, target)
            elif os.path.isdir(self.outputs(producer)):
                copies.append((self.outputs(producer), target))
            else:
                # A producer that wrote nothing has no folder in the store: an empty one here.
                os.mkdir(target)
        input_file = unit_dir + "/input.json"
        _write(input_file, _ENCODE_INPUT(task.input).encode())
        logs = f"{unit_dir}/{task.attempt}"
        return _Scratch(
            unit_dir,
            input_file,
            upstream,
            output,
            scratch,
            tuple(copies),
            f"{unit_dir}/{RESULT_FILE}",
            logs + ".out",
            logs + ".err",
        )

    def _spawn(
        self, task: StepTask, scratch: _Scratch, answered: Answered | None = None
    ) -> Process | Exit | None:
        """Start the attempt's program in a process group of its own, its output streams
        going to log files in its scratch; the Exit when the program cannot be started. With
        `answered`, a step the warm starter may fork is asked of it: None, and `answered` is
        told (on the loop) of its process, or of None when it is to be exec'd (by a call
        without `answered`)."""
        try:
            declared = {
                key.encode(): resolve(value, self._outer, self.secrets).encode()
                for key, value in task.env.items()
            }
        except KeyError:
            # Only a flow generated at run time can get here: the plan's are checked first.
            problems = [
                missing_source(value, self._outer, self.secrets) for value in task.env.values()
            ]
            return Exit(126, reason="; ".join(p for p in problems if p))
        env = {
            **self._environ,
            **declared,
            b"META_UNIT_ID": task.id.encode(),
            b"META_INPUT": scratch.input_file.encode(),
            b"META_OUTPUT": scratch.output.encode(),
            b"META_UPSTREAM": scratch.upstream.encode(),
            b"META_SCRATCH": scratch.scratch.encode(),
            b"META_ATTEMPT": str(task.attempt).encode(),
            b"META_RESULT": scratch.result.encode(),
        }
        stdout = _create(scratch.stdout)
        try:
            stderr = _create(scratch.stderr)
            try:
                argv = self._resolved(task.command, env)
                if answered is not None:
                    streams = (self._devnull, stdout, stderr)
                    if self._warm_asked(argv, env, task.workdir, streams, answered):
                        return None
                return subprocess.Popen(
                    argv,
                    cwd=task.workdir,
                    env=env,
                    stdin=self._devnull,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
            except OSError as exc:
                if not os.path.isdir(task.workdir):
                    # Its flow's folder, where it starts, is gone (not its program).
                    folder = f"its folder {task.workdir} is not there"
                    return Exit(126, f"cannot start {task.command[0]!r}: {folder}")
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                why = _too_long(argv, env) if exc.errno == errno.E2BIG else exc.strerror
                return Exit(code, f"cannot start {task.command[0]!r}: {why}")
            except ValueError:
                # A secret's value holding a NUL byte, which execve cannot pass (a rendered
                # argument or variable holding one is a template fault before the start).
                return Exit(126, f"cannot start {task.command[0]!r}: a NUL byte in its command")
            finally:
                os.close(stderr)
        finally:
            os.close(stdout)

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

    def _warm_asked(
        self,
        argv: list[str],
        env: Mapping[bytes, bytes],
        cwd: str,
        streams: tuple[int, int, int],
        answered: Answered,
    ) -> bool:
        """Whether the step was asked of the warm starter, when it is a `meta step` of this
        session's `meta`. The second such step starts the warm starter (a flow with one gains
        nothing); the steps before it is ready are exec'd."""
        if not self._may_warm_start or len(argv) < 3 or argv[1] != "step":
            return False
        if argv[0] != own_meta():
            return False
        loop = asyncio.get_running_loop()
        if self._warm is None or self._warm.loop is not loop:
            self._warm_candidates += 1
            if self._warm_candidates >= 2:
                if self._warm is not None:
                    self._warm.close()  # a driver outlives its first loop in tests
                self._warm = WarmStarter(argv[0], self._environ, loop)
            return False
        return self._warm.takes(argv[0], env) and self._warm.ask(argv, env, cwd, streams, answered)

    def _to_keep(self, scratch: _Scratch, pod: _Pod | None, code: int) -> tuple[list[str], bool]:
        """The logs with anything in them, and whether the attempt's outputs are to be
        persisted (it succeeded and wrote some)."""
        logs = [log for log in (scratch.stdout, scratch.stderr) if _holds_log(log)]
        if code != 0:
            return logs, False
        if pod is None:
            # A macro attempt's outputs folder goes with its scratch: removing it now is the
            # cheapest test that it is empty (one call, not a walk: most steps write nothing).
            return logs, not _removed_if_empty(scratch.output)
        return logs, _holds(scratch.output)

    def _keep(self, task: StepTask, scratch: _Scratch, logs: Sequence[str], persist: bool) -> None:
        """Copy an ended attempt's logs, and its outputs when `persist`, to the workdir."""
        if not os.path.isdir(self._store):
            # The workdir was removed while the run went on: it is not made again, in part.
            raise FileNotFoundError(errno.ENOENT, "the run's store is gone", self._store)
        if logs:
            kept = os.path.join(self._logs, on_disk(task.id))
            os.makedirs(kept, exist_ok=True)
            for log in logs:
                keep_log(log, os.path.join(kept, os.path.basename(log)))
        if persist:
            try:
                manifest = copy_tree(scratch.output, self.outputs(task.id))
            except BaseException:
                # Nothing of a refused or failed copy stays in the store.
                remove_tree(self.outputs(task.id))
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(self.outputs(task.id)))
                raise
            self._manifests[task.id] = manifest
            self.traffic.add(persisted=manifest.bytes)

    def _stage(self, copies: Sequence[tuple[str, str]]) -> int:
        """Copy producers' stored outputs into a consumer's upstream folders; the bytes
        copied. A section's folder of links is followed link by link (the links are the
        driver's own); everything else is copied as a step's outputs are kept."""
        total = 0
        pending = list(copies)
        while pending:
            source, target = pending.pop()
            if os.path.realpath(source) in self._combined:
                os.makedirs(target, exist_ok=True)
                for name in os.listdir(source):
                    part = os.path.join(source, name)
                    pending.append((os.path.realpath(part), os.path.join(target, name)))
            elif os.path.isdir(source):
                total += copy_tree(source, target).bytes
            else:
                os.makedirs(target, exist_ok=True)
        return total

    def _release(
        self, task: StepTask, scratch: _Scratch, pod: _Pod | None, code: int, persist: bool
    ) -> None:
        """A macro attempt's scratch goes (its outputs folder went already if it succeeded
        with nothing to persist: see `_to_keep`); a micro step's outputs stay with its pod,
        for its siblings to read where it wrote them."""
        if pod is None:
            _remove_scratch(scratch, task, output=code != 0 or persist)
        elif code == 0:
            pod.live[task.id] = scratch.output

    def forget(self, pid: int) -> None:
        self._groups.discard(pid)

    def kill_all(self) -> None:
        """Kill every process group still running: nothing outlives the run."""
        for pid in list(self._groups):
            _kill_group(pid, signal.SIGKILL)
        self._groups.clear()

    def close(self) -> None:
        self.closed = True
        self.kill_all()
        if self._warm is not None:
            # Before the orphans are stopped: steps it had not reaped yet come to this process.
            self._warm.close()
        if self.subreaper:
            stop_orphans(None, (), self._children)
        if self._children is not None:
            self._children.close()
        self.threads.shutdown(wait=True, cancel_futures=True)
        self._exits.close()
        self.logs_in_ram.close()
        os.close(self._devnull)
        remove_tree(str(self.scratch))


Process = subprocess.Popen[bytes] | WarmProcess
"""A step's program, started: exec'd, or forked by the warm starter."""
STARTED = (subprocess.Popen, WarmProcess)
Heard = Callable[["Process | Exit | BaseException"], None]
"""Called on the event loop with the step's process once it has ended (to be reaped), with
the Exit of an attempt whose program could not be started, or with what its start raised."""


class _Exits:
    """The ends of started processes, heard through their pidfds in one epoll set of its own,
    which the event loop watches as a single reader: a step's end costs an epoll_ctl and a
    call, not a reader added to and removed from the loop (asyncio's bookkeeping of a reader
    costs more than the step's system calls). Processes are added, and their ends heard, on the
    loop."""

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[int, tuple[Heard, Process]] = {}
        """What is told of each process not heard to end yet, by pidfd."""

    def watching(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make `loop` hear the set (on the loop, before processes are added)."""
        if self._epoll is None:
            self._epoll = select.epoll()
        if self._loop is not loop:
            # A driver outlives its first loop in tests: each loop gets the set as a reader.
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._epoll.fileno())
            loop.add_reader(self._epoll.fileno(), self._heard)
            self._loop = loop

    def add(self, process: Process, heard: Heard) -> None:
        """Call `heard` with `process`, on the loop, when it has ended. OSError or
        AttributeError where pidfds are not available."""
        assert self._epoll is not None
        pidfd = os.pidfd_open(process.pid)
        self._waiting[pidfd] = (heard, process)
        try:
            self._epoll.register(pidfd, select.EPOLLIN)
        except BaseException:
            del self._waiting[pidfd]
            os.close(pidfd)
            raise

    def _heard(self) -> None:
        assert self._epoll is not None
        for pidfd, _ in self._epoll.poll(0):
            # Out of the set at once: an ended process's pidfd stays readable.
            self._epoll.unregister(pidfd)
            heard, process = self._waiting.pop(pidfd)
            os.close(pidfd)
            heard(process)

    def close(self) -> None:
        if self._epoll is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        for pidfd in self._waiting:
            os.close(pidfd)
        self._waiting.clear()
        self._epoll = None
        self._loop = None


class LocalProcess:
    """One attempt at a step, from its scratch to its persisted outputs. The event loop makes
    its folders, starts its program and hears of its end; only copies (staging, persisting,
    keeping logs), whose cost grows with the data, go to a worker thread. A step that moves no
    data is plain calls on the loop, with no task of its own: its scratch is made when it is
    started, and its end is taken care of (reaped, checked, its scratch removed) in the call
    that hears it, which resolves what `wait` awaits. A step that moves data gets a task for
    that part."""

    def __init__(self, driver: LocalDriver, task: StepTask, pod: _Pod | None) -> None:
        self._driver = driver
        self._task = task
        self._pod = pod
        self._pid: int | None = None
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._outcome: Exit | BaseException | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._copying: asyncio.Task[None] | None = None
        """The task of a step that stages or keeps data, held here while it runs (the loop
        holds its tasks only weakly)."""
        self._scratch: _Scratch | None = None
        self._forking = False
        """Asked of the warm starter, not answered yet (no process to stop)."""
        self._begin()

    def _begin(self) -> None:
        driver = self._driver
        try:
            scratch = self._scratch = driver._prepare(self._task, self._pod)
        except (OSError, shutil.Error) as exc:
            self._settle(_not_set_up(exc))
            return
        except BaseException as exc:
            self._settle(exc)
            return
        if scratch.copies:
            self._copying = self._loop.create_task(self._stage_then_launch(scratch))
        else:
            self._launch(scratch)

    async def _stage_then_launch(self, scratch: _Scratch) -> None:
        driver = self._driver
        try:
            staged = await self._loop.run_in_executor(driver.threads, driver._stage, scratch.copies)
            driver.traffic.add(staged=staged)
        except (OSError, shutil.Error) as exc:
            self._settle(_not_set_up(exc))
            return
        except BaseException as exc:
            self._settle(exc)
            raise
        finally:
            self._copying = None
        self._launch(scratch)

    def _launch(self, scratch: _Scratch) -> None:
        """Start the program (on the loop: `subprocess` releases the interpreter lock across
        vfork and exec, CPython gh-104372, in 3.12 and in the 3.11.7 here) and have its end
        heard on the loop. Measured on 2 cores, this costs less than handing the start to a
        thread of its own: a handoff between threads at every step cost more CPU, and more
        time, than the loop spends waiting for its child's exec."""
        if self._outcome is not None or self._stopping or self._driver.closed:
            # Stopped while its data was staged (or the session is ending): nothing is to
            # start, and its scratch goes.
            self._heard(Exit(-1))
            return
        self._driver._exits.watching(self._loop)
        self._start(scratch, self._warm_answered)

    def _start(self, scratch: _Scratch, answered: Answered | None) -> None:
        driver = self._driver
        try:
            started = driver._spawn(self._task, scratch, answered)
        except BaseException as exc:
            self._heard(exc)
            return
        if started is None:
            self._forking = True  # asked of the warm starter: `_warm_answered` goes on
            return
        if isinstance(started, Exit):
            self._heard(started)
            return
        self._running(started, scratch)

    def _running(self, started: Process, scratch: _Scratch) -> None:
        """Have the end of the started program heard on the loop."""
        driver = self._driver
        self._pid = started.pid
        driver._groups.add(started.pid)
        driver.logs_in_ram.add(started.pid, self._loop, scratch.stdout, scratch.stderr)
        try:
            driver._exits.add(started, self._heard)
        except (AttributeError, OSError):
            # Not Linux, or a kernel before 5.3: a thread waits instead.
            driver.threads.submit(_wait_for, started, self._heard, self._loop)
        except BaseException as exc:
            _kill_group(started.pid, signal.SIGKILL)
            self._heard(exc)

    def _warm_answered(self, started: WarmProcess | None) -> None:
        """The warm starter forked the step (or did not: it is exec'd now), on the loop."""
        self._forking = False
        scratch = self._scratch
        assert scratch is not None
        if self._outcome is not None or self._driver.closed:
            # Stopped while it was asked for (settled then), or the session is ending.
            if started is not None:
                started.discard()
            if self._outcome is None:
                self._heard(Exit(-1))
            return
        if started is None:
            self._start(scratch, None)
            return
        self._running(started, scratch)

    def _heard(self, started: Process | Exit | BaseException) -> None:
        """The program ended, or could not start (on the loop): reap it, stop what it left,
        check and keep what it wrote, remove its scratch, and settle the attempt."""
        if self._outcome is not None:
            return
        try:
            self._end(started)
        except BaseException as exc:
            # Called by the loop's reader: what went wrong goes to the attempt's waiter.
            self._settle(exc)
            if not isinstance(exc, Exception):
                raise

    def _end(self, started: Process | Exit | BaseException) -> None:
        driver, task, pod, scratch = self._driver, self._task, self._pod, self._scratch
        assert scratch is not None
        try:
            # It has ended: this reaps it without blocking (before its group is searched for
            # orphans).
            code = started.wait() if isinstance(started, STARTED) else 0
        finally:
            pid = self._pid
            if pid is not None:
                # The step's main process ended: what it left in its group goes too.
                _kill_group(pid, signal.SIGKILL)
                driver.forget(pid)
                driver.logs_in_ram.discard(pid)
                if driver.subreaper:
                    stop_orphans(task.id, driver._groups, driver._children)
        if not isinstance(started, STARTED):
            if pod is None:
                _remove_scratch(scratch, task)
            self._settle(started)
            return
        self._ended(scratch, code)

    def _ended(self, scratch: _Scratch, code: int) -> None:
        driver, task, pod = self._driver, self._task, self._pod
        result, refusal = None, ""
        if code == 0:
            try:
                result = driver.secrets.redact_value(read_result(scratch.result))
            except ResultRefused as refused:
                code, refusal = CANNOT_KEEP, f"exited with code 0, but {refused}"
        try:
            stderr_tail = "" if code == 0 else _tail(scratch.stderr)
            stderr_tail = driver.secrets.redact(stderr_tail)
            logs, persist = driver._to_keep(scratch, pod, code)
            if logs or persist:
                ended = Exit(code, stderr_tail, refusal, result)
                self._copying = self._loop.create_task(self._keep(scratch, logs, persist, ended))
                return
            driver._release(task, scratch, pod, code, persist)
        except (OSError, shutil.Error, OutputRefused) as exc:
            self._settle(_not_kept(code, exc))
            return
        self._settle(Exit(code, stderr_tail, refusal, result))

    async def _keep(self, scratch: _Scratch, logs: list[str], persist: bool, ended: Exit) -> None:
        driver, task = self._driver, self._task
        try:
            await self._loop.run_in_executor(
                driver.threads, driver._keep, task, scratch, logs, persist
            )
            driver._release(task, scratch, self._pod, ended.code, persist)
        except (OSError, shutil.Error, OutputRefused) as exc:
            self._settle(_not_kept(ended.code, exc))
            return
        except BaseException as exc:
            self._settle(exc)
            raise
        finally:
            self._copying = None
        self._settle(ended)

    def _settle(self, outcome: Exit | BaseException) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self) -> Exit:
        if self._outcome is None:
            # A future of each waiter's own: a waiter cancelled cancels nothing else.
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter
        outcome = self._outcome
        assert outcome is not None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def last_words(self) -> str:
        # The stopped step's log stays: `wait` gives its tail once it has ended.
        return ""

    async def stop(self) -> None:
        self._stopping = True
        if self._forking and self._outcome is None:
            # Nothing runs yet: settled now; what the warm starter forks is killed.
            self._heard(Exit(-1))
        if self._pid is not None and self._outcome is None:
            _kill_group(self._pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), STOP_GRACE_SECONDS)
        if self._pid is not None:
            _kill_group(self._pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(self.wait(), STOP_GRACE_SECONDS)


def _not_set_up(exc: BaseException) -> Exit:
    return Exit(CANNOT_KEEP, reason=f"its scratch could not be set up: {exc}")


def _not_kept(code: int, exc: BaseException) -> Exit:
    return Exit(
        CANNOT_KEEP,
        reason=f"exited with code {code}, but its outputs or logs could not be kept: {exc}",
    )


def _tell(
    loop: asyncio.AbstractEventLoop,
    heard: Heard,
    outcome: Process | Exit | BaseException,
) -> None:
    """Call `heard` on its loop from another thread (nothing to do once the loop is closed: no
    one waits any more)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(heard, outcome)


def _wait_for(process: Process, heard: Heard, loop: asyncio.AbstractEventLoop) -> None:
    process.wait()
    _tell(loop, heard, process)


def _more_descriptors() -> None:
    """Raise the soft limit of open files to the hard one: outputs are walked holding two
    descriptors per folder level, and many steps may keep theirs at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def keep_log(source: str, target: str) -> None:
    """Copy a log whole when it is small; else its first and last LOG_PART_BYTES with a line
    between them saying how much was cut (a step writing 100 MB of stderr keeps 2 MiB)."""
    size = os.path.getsize(source)
    if size <= 2 * LOG_PART_BYTES:
        shutil.copyfile(source, target)
        return
    cut = size - 2 * LOG_PART_BYTES
    with open(source, "rb") as log, open(target, "wb") as kept:
        kept.write(log.read(LOG_PART_BYTES))
        kept.write(f"\n[... meta cut {cut} bytes of this log here ...]\n".encode())
        log.seek(size - LOG_PART_BYTES)
        kept.write(log.read(LOG_PART_BYTES))


def on_disk(unit_id: str) -> str:
    """A unit id as a relative path: each of its names as it is, but a name too long for a
    file system (the node key of a tree 1,000 levels deep, `root.0.1.0...`) shortened to its
    start and a digest of the whole, so the store holds trees of any depth."""
    if len(unit_id.encode()) <= MAX_NAME:
        return unit_id  # no name in it can be too long (a name is at most MAX_NAME bytes)
    return "/".join(_short(name) for name in unit_id.split("/"))


def _short(name: str) -> str:
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    return f"{name[:64]}~{digest}"


def kill_leftovers(token: str) -> None:
    """Kill the process groups a killed earlier session of this workdir left running.

    Every step runs with the workdir's token in its environment; a process still holding it
    when a new session starts belongs to a run that died (say by `kill -9`) and would race the
    resumed run for the same outputs.
    """
    marker = f"{RUN_TOKEN}={token}".encode()
    # Names and unbuffered reads rather than Path objects: every process of the machine is
    # looked at before the first step starts, and Path's overhead was most of the cost.
    try:
        names = os.listdir("/proc")
    except (FileNotFoundError, NotADirectoryError):
        return
    own = os.getpid()
    for name in names:
        if not name.isdigit() or int(name) == own:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb", buffering=0) as handle:
                environ = handle.read()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(int(name)), signal.SIGKILL)


def _kill_group(pid: int, sig: signal.Signals) -> None:
    try:  # noqa: SIM105 (contextlib.suppress costs more, at every step's end)
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _holds_log(path: str) -> bool:
    """Whether a step's log holds anything, and is still the file meta made: a step that put a
    link (or a FIFO) in its place did not write what that leads to."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size > 0


def _tail(path: str) -> str:
    """The end of a step's stderr log, "" when it is not a regular file any more (a FIFO the
    step put in its place would block the loop)."""
    try:
        descriptor = open_regular(path)
        if descriptor is None:
            return ""
        with open(descriptor, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - STDERR_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _emptied(directory: str) -> str:
    """`directory`, created empty (whatever an earlier attempt left there is gone)."""
    try:
        os.mkdir(directory)
    except FileNotFoundError:
        os.makedirs(directory)
    except FileExistsError:
        remove_tree(directory)
        os.makedirs(directory)
    return directory


def _too_long(argv: Sequence[str], env: Mapping[bytes, bytes]) -> str:
    """Why execve said E2BIG: the longest argument or variable, and the whole."""
    sizes = [len(os.fsencode(arg)) + 1 for arg in argv]
    sizes += [len(key) + len(value) + 2 for key, value in env.items()]
    limit = os.sysconf("SC_ARG_MAX") if "SC_ARG_MAX" in os.sysconf_names else 0
    return (
        f"its command line and environment are too long for the system: {sum(sizes):,} bytes, "
        f"the longest argument or variable {max(sizes):,} (Linux takes {MAX_ARG_STRLEN:,} "
        f"bytes an argument or variable, and {limit:,} in all); pass long values in a file"
    )


def _create(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)


def _write(path: str, data: bytes) -> None:
    descriptor = _create(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)


def _holds(folder: str) -> bool:
    """Whether `folder` has any entry (a step that removed its outputs folder wrote nothing).
    A folder replaced by a link or a file holds something: persisting it refuses it."""
    try:
        if os.path.islink(folder) or not os.path.isdir(folder):
            return os.path.lexists(folder)
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except FileNotFoundError:
        return False


def _removed_if_empty(folder: str) -> bool:
    """Remove `folder` if it is an empty folder (or gone); False if it holds anything or is
    not a folder (a link or a file in its place: persisting it refuses it)."""
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _remove_scratch(scratch: _Scratch, task: StepTask, *, output: bool = True) -> None:
    """Remove a macro attempt's scratch: the files and folders `_prepare` and `_spawn` made,
    one call each when the step left them as they were (the common case), a tree walk only
    for what holds more; its outputs folder only if `output` (else it has gone)."""
    for path in (scratch.input_file, scratch.stdout, scratch.stderr):
        try:  # noqa: SIM105 (contextlib.suppress costs more, at every step's end)
            os.unlink(path)
        except FileNotFoundError:
            pass
    folders = [f"{scratch.upstream}/{name}" for name, _ in task.upstream]
    folders += (scratch.upstream, scratch.scratch)
    if output:
        folders.append(scratch.output)
    folders.append(scratch.unit_dir)
    for folder in folders:
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError:
            remove_tree(folder)
