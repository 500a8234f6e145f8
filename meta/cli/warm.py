"""The warm starter (`meta step warm-starter --fd N`, started by meta.local.warm): start `meta
step` programs by forking a process that has loaded them already.

A generated validator starts one `meta step validate-node` per node of the data: as a new
program, each spends some 0.2 s loading Python, click and jsonschema and 0.1 s reading and
crawling its schema, to check one node in a few milliseconds. This process loads all of that
once per run; for each step the local driver sends it the step's arguments, environment,
working directory and standard streams over a socket, and it forks the step from itself. The
step is a process of its own as an exec'd one is: a new session and process group (its first
act: a stop in the moment before finds no group, and the driver's second signal, after its
grace, stops it), its own environment (`os.environ` and `sys.argv` are the step's), working
directory and logs, and it exits with the code the command gives. The driver hears its end
through its pidfd, as any step's, reads its exit code from /proc while it is a zombie (this
process's child, unreaped, its pid is not used again meanwhile), and then has this process
reap it.

The channel is a SOCK_SEQPACKET socket of pickled messages: `("start", argv, env, cwd)` with
the step's three streams (SCM_RIGHTS), answered `("started", pid)` or `("refused", why)` (the
driver then execs the step, as it would without a warm starter); `("reap", pid)`, answered
with nothing. Should this process end first, its steps are re-parented to the session (a child
subreaper), which then waits for them itself.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import signal
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from meta.cli.step import STEP_MODULES

MAX_REQUEST = 1 << 16
"""The longest request read (a step with longer arguments or environment is exec'd instead)."""


def serve(fd: int) -> int:
    """Answer the driver's requests on the socket `fd` until it closes it; the exit code."""
    try:
        channel = socket.socket(fileno=fd)
    except OSError as exc:
        print(f"warm-starter: --fd={fd} is no socket: {exc.strerror}", file=sys.stderr)
        return 2
    # Ctrl-C at the terminal reaches the whole foreground group: the session stops its steps
    # itself, and steps still to start would find this process gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in STEP_MODULES.values():
        import_module(module)
    # What is loaded now lives as long as this process and every fork of it: frozen, the
    # collector never walks it, so a fork's pages are not copied for its sake.
    gc.freeze()
    channel.send(pickle.dumps(("ready",)))
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, MAX_REQUEST, 3)
        except OSError:
            return 0
        if not message:
            return 0  # the session closed its end
        try:
            request = pickle.loads(message)
            if request[0] == "reap":
                # It has ended: the driver read its code. Nothing is said back.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(request[1], 0)
                continue
            _, argv, env, cwd = request
            answer: tuple[Any, ...] = _start(argv, env, cwd, fds)
        except Exception as exc:
            answer = ("refused", f"{type(exc).__name__}: {exc}")
        finally:
            for descriptor in fds:
                os.close(descriptor)
        channel.send(pickle.dumps(answer))


def _start(
    argv: list[str], env: dict[bytes, bytes], cwd: str, streams: Sequence[int]
) -> tuple[Any, ...]:
    if len(streams) != 3 or len(argv) < 3 or argv[1] != "step":
        return ("refused", "not a step")
    # The step's paths are relative to its folder: so are the files `warm` reads.
    os.chdir(cwd)
    _warm(argv[2], argv[3:])
    pid = os.fork()
    if pid == 0:
        _become(argv, env, cwd, streams)
    return ("started", pid)


def _warm(name: str, args: Sequence[str]) -> None:
    """Let the step's module load what a run with these arguments would (its `warm`). What it
    prints (argparse's help, a warning) is dropped: it would wait in this process's buffers,
    to be written by every step forked after it."""
    module = STEP_MODULES.get(name)
    warm = getattr(import_module(module), "warm", None) if module else None
    if warm is not None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warm(list(args))


def _become(argv: list[str], env: dict[bytes, bytes], cwd: str, streams: Sequence[int]) -> None:
    """In the forked step: take its session, streams, folder and environment, run its command
    and exit with its code (never returns)."""
    code = 1
    try:
        os.setsid()
        for target, descriptor in enumerate(streams):
            os.dup2(descriptor, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir(cwd)
        os.environb.clear()
        os.environb.update(env)
        time.tzset()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = list(argv)
        code = _run(argv)
    finally:
        os._exit(code)


def _run(argv: list[str]) -> int:
    """Run `meta ARGS` as the `meta` program would; its exit code."""
    from meta.cli import main

    try:
        main(args=argv[1:], prog_name="meta")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        _flush()
        # As Python ends on one: killed by the signal.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    _flush()
    return code


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
