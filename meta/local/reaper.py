"""Processes that leave their step's process group (`setsid`, a double fork) do not outlive it.

Killing a step's process group misses whatever moved to a session of its own. So `meta` makes
itself a child subreaper (Linux's `PR_SET_CHILD_SUBREAPER`): a process whose parent dies is
re-parented to `meta`, not to init, and so stays in sight. When a step ends, every child of
`meta` that is not a step still running and that belongs to that step (its environment names
the step, or names none because it was emptied) is killed, with its group, and reaped. When a
session ends, every such child goes.

A child in `meta`'s own process group is `meta`'s own (the `meta ui` it started, a browser):
steps start sessions of their own, so nothing a step starts can join that group. Such a child
is never touched, and neither is the group, which is also the group of whoever started `meta`
(a shell's job, a test runner).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Collection

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Ask the kernel to give this process its orphaned descendants; False where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def stop_orphans(
    unit_id: str | None, steps: Collection[int], children: Children | None = None
) -> int:
    """Kill and reap the children of this process that are not the running steps `steps` and
    belong to the step `unit_id` (to any step when None); how many were stopped. `children`:
    the list held open by the caller, else it is opened for this call."""
    if children is None:
        with Children() as once:
            return stop_orphans(unit_id, steps, once)
    stopped = 0
    own = os.getpgrp()
    # Killing one may hand its own children to this process in turn: look again until none.
    while True:
        found = [
            pid
            for pid in children.listed()
            if pid not in steps and _group(pid) not in (own, None) and _belongs(pid, unit_id)
        ]
        if not found:
            return stopped
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            stopped += 1


class Children:
    """The children of this process: its main thread's list (where re-parented orphans are,
    beside the steps the event loop started when it runs on that thread). The file
    stays open while a session runs: opening it costs tens of microseconds (a walk of /proc)
    at every step's end, and a read at offset 0 of the open file lists the children as they
    are at that read."""

    CHUNK = 1 << 16

    def __init__(self) -> None:
        pid = os.getpid()
        try:
            path = f"/proc/{pid}/task/{pid}/children"
            self._descriptor: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._descriptor = None

    def listed(self) -> list[int]:
        if self._descriptor is None:
            return []
        listing = b""
        try:
            while part := os.pread(self._descriptor, self.CHUNK, len(listing)):
                listing += part
        except OSError:
            return []
        return [int(child) for child in listing.split()]

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _belongs(pid: int, unit_id: str | None) -> bool:
    if unit_id is None:
        return True
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        # Gone already, or not ours to read; or ended (a zombie has no environment): reaped
        # by whoever looks (a step the warm starter left unreaped when it ended).
        return _ended(pid)
    named = [
        entry[len(b"META_UNIT_ID=") :] for entry in environ if entry.startswith(b"META_UNIT_ID=")
    ]
    return not named or named[0] == unit_id.encode()


def _ended(pid: int) -> bool:
    try:
        return stat_fields(pid)[0] == b"Z"
    except OSError:
        return False


def stat_fields(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command's name: the state (`Z`: ended, not
    reaped), then the parent's pid and the rest as proc(5) numbers them, less 3. OSError
    (FileNotFoundError: gone) when it cannot be read."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()
