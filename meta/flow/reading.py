"""Opening a file a user names, refused by its type before anything is read from it.

A flow, a flowRef or an input names a path, and whatever is there gets read: a FIFO would block
the reader forever, `/dev/zero` would fill memory, and `/proc` files are the kernel's. So the
type is checked first (on the path, then again on the open descriptor, which is opened without
waiting for a writer), and at most `limit` bytes are read. Faults say what the path is, never
what it holds.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from meta.errors import Fault, UserError

MAX_FILE_BYTES = 1 << 30
"""The most bytes read from one file (a flow, a flowRef, an input, a description)."""
_KERNEL = ("/proc", "/sys")


class _Refused(OSError):
    """What the opened file turned out to be, or that it went past the limit."""

    def __str__(self) -> str:
        return str(self.args[0])


def read_regular(
    path: Path,
    shown: str,
    fault: type[UserError],
    *,
    missing: str,
    limit: int = MAX_FILE_BYTES,
) -> str:
    """The UTF-8 text of the regular file at `path`, or a `fault` naming it as `shown` and
    saying why not."""
    try:
        status = os.stat(path)
        problem = _kind_problem(path, status.st_mode)
        if problem is None and status.st_size > limit:
            problem = f"is larger than {limit:,} bytes"
        if problem is None:
            return _read(path, limit).decode("utf-8")
    except _Refused as refused:
        problem = str(refused)
    except FileNotFoundError:
        problem = missing
    except UnicodeDecodeError as exc:
        # Before ValueError, of which it is a kind.
        problem = f"is not UTF-8 text (byte {exc.start})"
    except ValueError:
        problem = "the path holds a NUL byte"
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or exc}"
    raise fault(Fault(shown, "", problem))


def read_regular_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path` (a run's own records, which something else may
    have been put in the place of): an OSError saying what else it is (FileNotFoundError when
    there is nothing), never a wait on a FIFO or an endless read of a device."""
    return _read(path, limit)


def kind_problem(path: Path) -> str | None:
    """What keeps `path` from being read as a file ("not found", "is a FIFO ..."), or None."""
    try:
        return _kind_problem(path, os.stat(path).st_mode)
    except FileNotFoundError:
        return "not found"
    except ValueError:
        return "the path holds a NUL byte"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"


def _kind_problem(path: Path, mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (a named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    real = os.path.realpath(path)
    if any(real == top or real.startswith(top + "/") for top in _KERNEL):
        return "is a file of the kernel (/proc, /sys), not a regular file"
    return None


def _read(path: Path, limit: int) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # Checked again on what was opened: the path may have been swapped since.
        problem = _kind_problem(path, os.fstat(descriptor).st_mode)
        if problem is not None:
            raise _Refused(problem)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(descriptor, 1 << 20):
            size += len(chunk)
            if size > limit:
                raise _Refused(f"is larger than {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)
