"""The driver's side of the warm starter (meta.cli.warm): `meta step` programs forked from a
process that has loaded them, instead of started anew.

Used for a step whose command is `meta step ...` and whose `meta` is the program the warm
starter was started from, when the step's environment gives Python what it gave the warm
starter (the variables that change how the interpreter starts: PYTHON*, LANG, LC_*), and only
when this session is a child subreaper (should the warm starter end, the steps it forked are
re-parented to the session, which waits for them itself). Anything else, or a warm starter that
cannot answer, and the step is exec'd as every other step is. `META_WARM_START=0` in meta's
environment turns it off.

The warm starter is started at the first such step, which is exec'd: the following ones are
forked once it has said it is ready (it loads its modules meanwhile, beside the run).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

SWITCH = "META_WARM_START"
INTERPRETER = (b"PYTHON", b"LANG", b"LC_")
"""Variables that change how Python starts: a step forked from the warm starter has the warm
starter's start, so these must be the same for the step."""
MAX_REQUEST = 1 << 16
"""The longest request sent (as meta.cli.warm reads); a longer step is exec'd."""
ANSWER_SECONDS = 30.0
"""How long a step's start may take the warm starter (forking, and the first time it sees a
schema, reading and crawling it) before it is given up for this session."""
CLOSE_SECONDS = 2.0
POLL_SECONDS = 0.01
"""How often a thread waiting for a forked step asks whether it has ended."""
LOST = 255
"""The exit code of a step that was gone before its code was read (reaped by another)."""


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


class WarmStarter:
    def __init__(self, program: str, environ: Mapping[bytes, bytes]) -> None:
        """Start the warm starter from `program` (a `meta`), with `environ`."""
        self.program = program
        self._interpreter = _interpreter(environ)
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

    def ready(self) -> bool:
        """Whether it is ready to fork steps (asked without waiting)."""
        if self._ready:
            return True
        if self._process is None:
            return False
        try:
            said = self._said(wait=False)
        except BlockingIOError:
            return False
        except (OSError, pickle.UnpicklingError, EOFError):
            said = ()
        if said != ("ready",):
            self.close()  # it ended, or said something else: steps are exec'd
            return False
        self._ready = True
        return True

    def takes(self, program: str, env: Mapping[bytes, bytes]) -> bool:
        """Whether a step of `program` with `env` may be forked from it."""
        return program == self.program and _interpreter(env) == self._interpreter

    def start(
        self, argv: Sequence[str], env: Mapping[bytes, bytes], cwd: str, streams: Sequence[int]
    ) -> WarmProcess | None:
        """Fork the step `argv` (its program resolved) with stdin, stdout and stderr
        `streams`; None when the warm starter did not start it (the step is to be exec'd)."""
        request = pickle.dumps(("start", list(argv), dict(env), os.path.abspath(cwd)))
        if len(request) > MAX_REQUEST or not self.ready():
            return None
        try:
            socket.send_fds(self._channel, [request], list(streams))
            answer = self._said()
        except (OSError, pickle.UnpicklingError, EOFError):
            # It did not answer: given up for the session (steps are exec'd).
            self.close()
            return None
        return WarmProcess(answer[1], self) if answer[0] == "started" else None

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

    def _said(self, *, wait: bool = True) -> tuple[Any, ...]:
        """Its next message; EOFError once it has ended, TimeoutError when it says nothing
        in ANSWER_SECONDS (BlockingIOError when not `wait`ing and it has said nothing)."""
        if wait:
            ready, _, _ = select.select([self._channel], [], [], ANSWER_SECONDS)
            if not ready:
                raise TimeoutError("the warm starter did not answer")
        message = self._channel.recv(MAX_REQUEST, 0 if wait else socket.MSG_DONTWAIT)
        if not message:
            raise EOFError("the warm starter has ended")
        said = pickle.loads(message)
        if not isinstance(said, tuple) or not said:
            raise EOFError(f"the warm starter said {said!r}")
        return said

    def close(self) -> None:
        """Stop it: it ends when its channel closes (killed if it does not). Steps it forked
        that still run, and those it has not reaped, are re-parented to this process."""
        self._ready = False
        self._channel.close()
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(CLOSE_SECONDS)


def _zombie_status(pid: int) -> int | None:
    """The wait status of the ended, unreaped process `pid` (field 52 of /proc/PID/stat, since
    Linux 3.5), None while it runs; FileNotFoundError when it is gone (reaped by another)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return int(fields[49]) if fields[0] == b"Z" else None


def _interpreter(env: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    return {key: value for key, value in env.items() if key.startswith(INTERPRETER)}


def warm_start_allowed(environ: Mapping[str, str]) -> bool:
    """Whether meta's environment lets steps be forked from a warm starter."""
    return environ.get(SWITCH, "1") != "0" and hasattr(socket, "send_fds")
