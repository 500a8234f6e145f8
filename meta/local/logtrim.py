"""Running steps' logs kept small in RAM: a step's stdout and stderr are files in its RAM
scratch until it ends, when their first and last LOG_PART_BYTES are kept (see `keep_log`); a
step that writes without end (a chatty service, a loop printing) would fill the RAM first. So
every CHECK_SECONDS, a running step's log holding more than RAM_BYTES has what lies between its
first and last LOG_PART_BYTES punched out: the file keeps its size (the step writes on at its
offset, and what is kept at its end reads as it would have), and the RAM is given back.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import stat
from collections.abc import Callable

CHECK_SECONDS = 1.0
RAM_BYTES = 16 << 20
"""What a running step's log may hold in RAM before its middle is punched out."""
_PUNCH_HOLE = 0x02 | 0x01
"""FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (linux/falloc.h)."""


class LogTrimmer:
    """The logs of the steps running on one event loop, looked at every CHECK_SECONDS while
    there are any."""

    def __init__(self, part_bytes: int) -> None:
        self._part = part_bytes
        self._logs: dict[int, tuple[str, ...]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._punch: Callable[[int, int, int], None] | None = None

    def add(self, key: int, loop: asyncio.AbstractEventLoop, *paths: str) -> None:
        """Watch `paths` (a running step's logs) until `discard(key)`."""
        self._logs[key] = paths
        if self._timer is None:
            self._timer = loop.call_later(CHECK_SECONDS, self._check, loop)

    def discard(self, key: int) -> None:
        self._logs.pop(key, None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._logs.clear()

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        for paths in list(self._logs.values()):
            for path in paths:
                self.trim(path)
        if self._logs and not loop.is_closed():
            self._timer = loop.call_later(CHECK_SECONDS, self._check, loop)

    def trim(self, path: str) -> None:
        """Punch out the middle of the log at `path` if it holds more than RAM_BYTES; nothing
        if it is not a regular file any more (a step may put anything in its place)."""
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        try:
            info = os.fstat(descriptor)
            held = info.st_blocks * 512
            middle = info.st_size - 2 * self._part
            if stat.S_ISREG(info.st_mode) and held > RAM_BYTES and middle > 0:
                self._punched(descriptor, self._part, middle)
        finally:
            os.close(descriptor)

    def _punched(self, descriptor: int, offset: int, length: int) -> None:
        if self._punch is None:
            self._punch = _fallocate()
        self._punch(descriptor, offset, length)


def _fallocate() -> Callable[[int, int, int], None]:
    """libc's fallocate punching a hole (no Python function does); a file system that cannot
    punch one (ENOTSUP) leaves the log as it is."""
    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.fallocate
    function.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    function.restype = ctypes.c_int

    def punch(descriptor: int, offset: int, length: int) -> None:
        function(descriptor, _PUNCH_HOLE, offset, length)

    return punch
