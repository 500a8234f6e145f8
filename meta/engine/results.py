"""A step's result: the small JSON value it may write to the file META_RESULT names.

Every driver reads it the same way, once the step has exited with code 0: a missing or empty
file is no result; more than MAX_RESULT_BYTES, text that is not JSON, or JSON nested deeper than
MAX_RESULT_DEPTH, fails the attempt with a reason that says so.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from meta.flow.files import nested_deeper_than
from meta.steps.yamlnodes import MAX_DEPTH

MAX_RESULT_BYTES = 64 * 1024
MAX_RESULT_DEPTH = MAX_DEPTH
"""As deep as a YAML document may nest: a result goes on into journal lines, reports and
templates, each of which nests it a little deeper, and 64 KiB of brackets would nest past the
interpreter's recursion limit."""
RESULT_FILE = "result.json"


class ResultRefused(Exception):
    """The step wrote a result that cannot be taken; the message says why."""


def read_result(path: str) -> Any:
    """The JSON value in `path`, None when there is no file or it is empty. Anything but a
    regular file there (a FIFO, which would block the reader; a link, which would stand for a
    file the step did not write; a device) is refused."""
    try:
        descriptor = open_regular(path)
    except NotRegularFile as exc:
        raise ResultRefused(f"its result ($META_RESULT) is {exc.kind}, not a file") from None
    except OSError as exc:
        raise ResultRefused(f"its result ($META_RESULT) cannot be read: {exc.strerror}") from None
    if descriptor is None:
        return None
    try:
        data = _read_at_most(descriptor, MAX_RESULT_BYTES + 1)
        if len(data) > MAX_RESULT_BYTES:
            size = max(os.fstat(descriptor).st_size, len(data))
            raise ResultRefused(
                f"its result ($META_RESULT) is {size} bytes; a result holds at most "
                f"{MAX_RESULT_BYTES} (64 KiB): write bigger data to META_OUTPUT"
            )
    finally:
        os.close(descriptor)
    if not data.strip():
        return None
    try:
        value = json.loads(data, parse_constant=_not_json)
        too_deep = nested_deeper_than(value, MAX_RESULT_DEPTH)
    except ValueError as exc:
        raise ResultRefused(f"its result ($META_RESULT) is not JSON: {exc}") from None
    except RecursionError:
        too_deep = True
    if too_deep:
        raise ResultRefused(
            f"its result ($META_RESULT) is nested too deeply: a result nests at most "
            f"{MAX_RESULT_DEPTH} levels"
        )
    return value


class NotRegularFile(OSError):
    """A path that a reader of what steps wrote does not open: `kind` says what it is."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a file")
        self.kind = kind


def open_regular(path: str) -> int | None:
    """A descriptor to read the regular file `path`, None when there is nothing there;
    NotRegularFile when it is a link or not a regular file (opened without blocking and
    without following a link, so a FIFO or a link to a device is found, not waited on)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        # A link (ELOOP), a socket (ENXIO)...: said as what it is, when it is not a file.
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, _kind(mode)) from None
        raise
    mode = os.fstat(descriptor).st_mode
    if stat.S_ISREG(mode):
        return descriptor
    os.close(descriptor)
    raise NotRegularFile(path, _kind(mode))


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def _read_at_most(descriptor: int, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while total < limit:
        part = os.read(descriptor, limit - total)
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def read_kept(path: str) -> Any:
    """A result the framework itself kept in a file (a micro section's, a child flow's), of
    any size; None when there is no file. A file nested too deeply to be read (the store is
    shared with steps, which may write over it) is a ValueError, as text that is not JSON is;
    a link or a FIFO put in its place is a NotRegularFile (an OSError)."""
    descriptor = open_regular(path)
    if descriptor is None:
        return None
    try:
        with open(descriptor, encoding="utf-8") as handle:
            return json.load(handle)
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be read") from None


def keep(path: str, value: Any) -> None:
    """Keep a result in a file for `read_kept` (nothing for no result), written whole: a reader
    never finds half of it."""
    if value is None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(value, handle, separators=(",", ":"))
    os.replace(partial, path)
