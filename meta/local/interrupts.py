"""Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal closed) at any moment of a local session.

A signal may come while `meta` starts, while a flow compiles, while the workdir, the journal
or the scratch are set up, while steps run, or while the report is written. `meta/__init__.py`
takes the signals first in the `meta` command's process. While nothing is written (starting,
compiling: `allowed`) a signal ends `meta` at once, with exit code 128 + the signal's number
(130, 143, 129) and no traceback. Otherwise it is only noted (`deferred`): setting up and tearing
down always complete, the running flow is cancelled (through `on_signal`, which the loop sets),
its steps are stopped, the report says `cancelled`, the scratch goes, and the exit code is the
same. A signal that comes after the report said `succeeded` changes nothing. SIGHUP is taken
only when it is not ignored: `nohup meta run ...` goes on after its terminal closes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(SystemExit):
    """`meta` ends on a signal: a SystemExit, so it unwinds (finally blocks run) and the
    interpreter exits with 128 + the signal's number, printing nothing."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class Interrupts:
    def __init__(self) -> None:
        self.received: int | None = None
        """The first signal received, if any."""
        self.installed = False
        self.owns_process = False
        """Whether this process is the `meta` command itself (set by `meta/__init__.py`)."""
        self.on_signal: Callable[[], object] | None = None
        """Called (in the main thread) on each signal while set: a running loop's cancel."""
        self._deferring = 0

    def install(self) -> None:
        """Take SIGINT, SIGTERM and (unless it is ignored) SIGHUP for the life of this process
        (main thread only)."""
        if self.installed:
            return
        for sig in SIGNALS:
            if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
                continue
            signal.signal(sig, self.handle)
        self.installed = True

    def uninstall(self) -> None:
        """Give SIGINT (KeyboardInterrupt), SIGTERM and SIGHUP their earlier behaviour back."""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if signal.getsignal(signal.SIGHUP) == self.handle:
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
        self.installed = False

    def note(self, signum: int) -> None:
        if self.received is None:
            self.received = signum

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        self.note(signum)
        if self.on_signal is not None:
            self.on_signal()
        if not self._deferring:
            raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within this block a signal is only noted; the caller looks at `received`."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    @contextmanager
    def allowed(self) -> Iterator[None]:
        """Within this block (inside a `deferred` one) a signal ends `meta` at once again: a
        flow being compiled has nothing to tear down."""
        deferring, self._deferring = self._deferring, 0
        try:
            if self.received is not None:
                raise Interrupted(self.received)
            yield
        finally:
            self._deferring = deferring

    def block(self) -> None:
        """Hold the signals back for the rest of this process (it is about to exit).
        Only in the `meta` command's own process: one that calls the CLI and goes on (a test,
        a program) would keep them blocked, and so would every process it starts after."""
        if self.owns_process:
            signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)

    def exit_code(self, default: int) -> int:
        return 128 + self.received if self.received is not None else default


INTERRUPTS = Interrupts()
"""The process's one record of signals (installed by `meta run` and `meta resume`)."""
