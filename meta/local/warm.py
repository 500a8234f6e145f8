"""The driver's side of the warm starter (meta.cli.warm): `meta step` programs forked from a
process that has loaded them, instead of started anew.

Used for a step whose command is `meta step ...` run by this session's own `meta` (the one
beside the Python running it; a program of the user's named `meta` is exec'd), whose
environment is the warm starter's but for the META_* variables (a step that sets anything else,
PYTHONPATH, LD_PRELOAD, a locale, is exec'd: those act where a program starts), and only where
this session is a child subreaper (should the warm starter end, the steps it forked are
re-parented to the session, which waits for them itself) and has pidfds. Anything else, and
the step is exec'd as every other step is. `META_WARM_START=0` (or false, no, off) in meta's
environment turns it off.

The warm starter is started at the second such step of a session (a flow with one gains
nothing from it); the steps before it has said it is ready are exec'd. A step is asked for on
the event loop and answered there, so the loop never waits for the warm starter; a step waits
for it at most WAIT_SECONDS (it reads a schema or data file for the steps in line), and is
exec'd after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from meta.local.reaper import stat_fields

SWITCH = "META_WARM_START"
OFF = frozenset({"0", "false", "no", "off"})
MAX_REQUEST = 1 << 16
"""The longest request sent (as meta.cli.warm reads); a longer step is exec'd."""
WAIT_SECONDS = 1.0
"""How long a step waits for the warm starter (busy reading and crawling a schema, or reading a
data file, for the steps after it) before it is exec'd instead (what the warm starter forks
for it later is killed); while the warm starter is that late, steps are exec'd."""
STALLED_SECONDS = 30.0
"""How long the warm starter may be late while it uses no CPU before it is given up for the
session (it is stopped, or stuck): all later steps are exec'd."""
CLOSE_SECONDS = 2.0
POLL_SECONDS = 0.01
"""How often a thread waiting for a forked step asks whether it has ended."""
LOST = 255
"""The exit code of a step that was gone before its code was read (reaped by another)."""

Answered = Callable[["WarmProcess | None"], None]
"""Told on the loop of a step asked for: its process, or None when it was not forked (the
driver execs it)."""


def warm_start_allowed(environ: Mapping[str, str]) -> bool:
    """Whether meta's environment lets steps be forked from a warm starter."""
    off = environ.get(SWITCH, "1").strip().lower() in OFF
    return not off and hasattr(socket, "send_fds") and hasattr(os, "pidfd_open")


def own_meta() -> str:
    """The `meta` program of the Python running this session: the only one forked from."""
    return os.path.join(os.path.dirname(sys.executable), "meta")


class WarmProcess:
    """A step the warm starter forked: its child, whose end the driver hears through its pidfd
    as any step's; waited for as subprocess.Popen waits for its own."""

    def __init__(self, pid: int, starter: WarmStarter) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._starter = starter

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = self._starter.exit_code(self.pid)
        return self.returncode

    def discard(self) -> None:
        """Kill it, and reap it beside the loop: it is not to run (its step was stopped, or
        exec'd instead, while it was being forked)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # before its setsid, it has no group
        self._starter.loop.run_in_executor(None, self.wait)


class WarmStarter:
    """The session's warm starter, asked on the event loop `loop`: a step asked for is
    answered later, on the loop, so the loop goes on while the warm starter reads a schema or
    a data file it has not seen."""

    def __init__(
        self, program: str, environ: Mapping[bytes, bytes], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Start the warm starter from `program` (this session's `meta`), with `environ`."""
        self.program = program
        self.loop = loop
        self._environ = _outside_meta(environ)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [program, "step", "warm-starter", f"--fd={theirs.fileno()}"],
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                cwd="/",
            )
        except OSError:
            self._process = None
        finally:
            theirs.close()
        self._channel = ours
        self._ready = False
        self._pending: deque[Answered] = deque()
        """Who is told of each step asked for and not answered yet, oldest first (a step that
        was exec'd instead, the warm starter being late, is told nothing)."""
        self._late: asyncio.TimerHandle | None = None
        self._busy = False
        """It is late: steps are exec'd until it answers."""
        self._progress = (0, 0.0)
        """Its CPU time when last seen to grow, and when."""
        if self._process is not None:
            ours.setblocking(False)
            loop.add_reader(ours.fileno(), self._heard)

    def takes(self, program: str, env: Mapping[bytes, bytes]) -> bool:
        """Whether a step of `program` with `env` may be forked from it: it is the warm
        starter's `meta`, and its environment is the warm starter's but for META_* variables
        (any other, LD_PRELOAD, PYTHONPATH, a locale, acts where a program starts)."""
        return program == self.program and _outside_meta(env) == self._environ

    def ask(
        self,
        argv: Sequence[str],
        env: Mapping[bytes, bytes],
        cwd: str,
        streams: Sequence[int],
        answered: Answered,
    ) -> bool:
        """Ask for the step `argv` (its program resolved) to be forked with stdin, stdout and
        stderr `streams`; `answered` is told on the loop. False when it cannot be asked (not
        ready yet, or given up, or the request is too long): the step is to be exec'd now."""
        if not self._ready or self._busy:
            return False
        request = pickle.dumps(("start", list(argv), dict(env), os.path.abspath(cwd)))
        if len(request) > MAX_REQUEST:
            return False
        try:
            socket.send_fds(self._channel, [request], list(streams))
        except OSError:
            self.give_up()
            return False
        self._pending.append(answered)
        if self._late is None:
            self._late = self.loop.call_later(WAIT_SECONDS, self._waited)
        return True

    def _waited(self) -> None:
        """Steps have waited WAIT_SECONDS for an answer (on the loop): they are exec'd, and
        the warm starter is asked nothing until it answers; unless it works, given up after
        STALLED_SECONDS."""
        self._late = self.loop.call_later(WAIT_SECONDS, self._waited)
        self._busy = True
        for number, answered in enumerate(self._pending):
            if answered is not _discard:
                self._pending[number] = _discard
                answered(None)
        cpu, since = self._progress
        now = time.monotonic()
        used = _cpu_ticks(self._process.pid) if self._process is not None else cpu
        if used != cpu or not since:
            self._progress = (used, now)
        elif now - since > STALLED_SECONDS:
            self.give_up()

    def _heard(self) -> None:
        """What the warm starter said (on the loop): that it is ready, or its answers."""
        while True:
            try:
                message = self._channel.recv(MAX_REQUEST)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            try:
                said = pickle.loads(message) if message else None
            except (pickle.UnpicklingError, EOFError, ValueError):
                said = None
            if not isinstance(said, tuple) or not said:
                self.give_up()  # it ended, or said what it never says
                return
            if said == ("ready",):
                self._ready = True
                continue
            if not self._pending:
                self.give_up()
                return
            answered = self._pending.popleft()
            self._busy = False
            self._progress = (0, 0.0)
            if self._late is not None:
                self._late.cancel()
                self._late = (
                    self.loop.call_later(WAIT_SECONDS, self._waited) if self._pending else None
                )
            answered(WarmProcess(said[1], self) if said[0] == "started" else None)

    def exit_code(self, pid: int) -> int:
        """The exit code of the step `pid` once it has ended (asked when its pidfd says so; a
        thread waiting for it polls until then): read from /proc while it is a zombie, after
        which the starter is told to reap it, with no answer to wait for. A step the starter
        left behind when it ended is this process's child (re-parented), waited for here."""
        while True:
            with contextlib.suppress(ChildProcessError):
                reaped, waited = os.waitpid(pid, os.WNOHANG)
                if reaped:
                    return os.waitstatus_to_exitcode(waited)
            try:
                status = _zombie_status(pid)
            except FileNotFoundError:
                return LOST
            if status is not None:
                break
            time.sleep(POLL_SECONDS)
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._channel.send(pickle.dumps(("reap", pid)))
        return os.waitstatus_to_exitcode(status)

    def give_up(self) -> None:
        """Stop using it this session (on the loop): the steps asked for and not answered
        are told None, to be exec'd."""
        pending = [answered for answered in self._pending if answered is not _discard]
        self.close(kill=True)
        for answered in pending:
            answered(None)

    def close(self, *, kill: bool = False) -> None:
        """Stop it: it ends when its channel closes (killed at once with `kill`, or if it
        never said it was ready; killed if it does not end). Steps it forked that still run,
        and those not reaped yet, are re-parented to this process; the steps not answered are
        not told."""
        if self._late is not None:
            self._late.cancel()
            self._late = None
        busy = bool(self._pending)
        self._pending.clear()
        process, self._process = self._process, None
        if process is None:
            self._channel.close()  # (it was never started, or is closed already)
            return
        if not self.loop.is_closed():
            self.loop.remove_reader(self._channel.fileno())
        self._channel.close()
        if kill or busy or not self._ready:
            process.kill()  # (loading or reading, it would read the end of its channel only after)
        self._ready = False
        try:
            process.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(CLOSE_SECONDS)


def _discard(process: WarmProcess | None) -> None:
    """Told of a step that was exec'd instead, the warm starter having been late."""
    if process is not None:
        process.discard()


def _cpu_ticks(pid: int) -> int:
    try:
        fields = stat_fields(pid)
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def _zombie_status(pid: int) -> int | None:
    """The wait status of the ended, unreaped process `pid` (field 52 of /proc/PID/stat, since
    Linux 3.5), None while it runs; FileNotFoundError when it is gone (reaped by another)."""
    fields = stat_fields(pid)
    return int(fields[49]) if fields[0] == b"Z" else None


def _outside_meta(env: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    return {key: value for key, value in env.items() if not key.startswith(b"META_")}
