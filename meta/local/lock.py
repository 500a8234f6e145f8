"""One session at a time in a workdir: an advisory lock held for the life of the session.

Two sessions of one workdir would kill each other's steps (a session kills what an earlier one
left running) and run steps twice. The lock is `flock` on `WORKDIR/session.lock`, which the
kernel releases when the process ends however it ends (`kill -9` included), so a stale lock is
never left behind. The file holds the holder's pid, for the fault a second session gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from meta.errors import Fault, UserError
from meta.flow.files import display_path

LOCK_FILE = "session.lock"


@contextlib.contextmanager
def session_lock(workdir: Path) -> Iterator[None]:
    """Hold the workdir's lock, or raise a `UserError` naming the pid that holds it."""
    path = workdir / LOCK_FILE
    try:
        # CLOEXEC: a step (or a process it leaves behind) must never hold the lock.
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise UserError(
            Fault(display_path(path), "", f"the session lock cannot be made: {exc.strerror}")
        ) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(
                Fault(
                    display_path(workdir),
                    "",
                    f"another session (pid {holder}) is working in this workdir; "
                    "wait for it to end or stop it",
                )
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)


def lock_holder(workdir: Path) -> tuple[int, float] | None:
    """The pid the workdir's lock file names and when it was written (a session writes it as
    soon as it holds the lock, before anything else), or None: no lock file, or not one a
    session wrote. Read without locking: a reader never delays a session's start."""
    try:
        descriptor = os.open(workdir / LOCK_FILE, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return None
        text = os.pread(descriptor, 32, 0)
    finally:
        os.close(descriptor)
    if not re.fullmatch(rb"[0-9]{1,10}\n", text):
        return None
    return int(text), status.st_mtime
