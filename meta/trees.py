"""Copying, measuring and removing the folders steps write, without trusting anything in them.

A step owns its `META_OUTPUT` while it runs (and a process it left behind may still write there),
so every walk here holds a file descriptor for each folder and opens every name relative to it
with `O_NOFOLLOW`: no link is followed by accident, the output folder itself included (a step
that replaces `META_OUTPUT` with a link to `/` gets its attempt refused, not `/` copied). The one
kind of link kept is a link to a regular file inside the output folder, kept as a copy of that
file, found by opening each part of its resolved path the same way. Walks are iterative (a tree
1,000 folders deep is walked like a flat one), and copies keep files sparse: a block of zeros
is neither read from a hole nor written.

A copy or a measure gives the `Manifest` of the tree (files, bytes and one digest over names and
contents), which the local journal keeps for every finished unit, so that a resumed run can tell
outputs that went missing or changed in its store.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from meta.errors import MetaError

BLOCK = 1 << 16
"""Files are read, digested and written in blocks of this size; a block of zeros is skipped."""
MAX_DEPTH = 4096
"""Folders nested deeper than this are refused: each level holds two descriptors while walked."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class OutputRefused(MetaError):
    """An output a step left that is not kept: `META_OUTPUT` replaced by a link or a file, a
    link out of it or to a folder, or a special file. The attempt fails, naming the output."""


@dataclass(frozen=True)
class Manifest:
    """What a folder of outputs holds: its files, their bytes, one digest over all of it."""

    files: int
    bytes: int
    digest: str

    def as_json(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "sha256": self.digest}

    @staticmethod
    def from_json(value: Any) -> Manifest | None:
        """The manifest a journal line holds; None for one that is not (a corrupt line)."""
        if not isinstance(value, dict):
            return None
        files, size, digest = value.get("files"), value.get("bytes"), value.get("sha256")
        if isinstance(files, int) and isinstance(size, int) and isinstance(digest, str):
            return Manifest(files, size, digest)
        return None


def copy_tree(source: str, target: str) -> Manifest:
    """Copy the folder `source` (a step's outputs) to `target`, which is made; its manifest.
    `OutputRefused` names the first entry that is not kept; `FileNotFoundError` when `source`
    is not there."""
    return _manifest(*_walk(source, target))


def link_tree(source: str, target: str) -> Manifest:
    """`copy_tree`, but each regular file hard-linked into `target` rather than copied where
    the file system allows (the same one, a link count to spare); the rest is copied."""
    return _manifest(*_walk(source, target, link=True))


def measure_tree(source: str) -> Manifest:
    """The manifest of the folder `source`, as `copy_tree` would give it."""
    return _manifest(*_walk(source, None))


def measure_parts(parts: Sequence[tuple[str, str]]) -> Manifest | None:
    """The manifest of the folder that would hold each (path inside it, folder) part at its
    path (a part whose folder is not there as an empty folder), as `measure_tree` would give
    it once they are put together; None for one whole part that is not there."""
    if len(parts) == 1 and not parts[0][0] and not os.path.isdir(parts[0][1]):
        return None
    entries: list[bytes] = []
    folders: set[bytes] = set()
    files = size = 0
    for inside, folder in parts:
        steps = [part for part in inside.split("/") if part]
        for depth in range(1, len(steps) + 1):
            folders.add(b"d\0" + os.fsencode("/".join(steps[:depth])) + b"\0")
        if not os.path.isdir(folder):
            continue
        found, count, length = _walk(folder, None, where="/".join(steps))
        entries.extend(found)
        files += count
        size += length
    return _manifest([*entries, *folders], files, size)


def remove_tree(path: str) -> None:
    """Remove `path` and everything under it, following no link, at any depth; what cannot be
    removed (a folder its step made unwritable) is left, as `shutil.rmtree(ignore_errors)`."""
    try:
        root = os.open(path, _DIRECTORY)
    except FileNotFoundError:
        return
    except OSError:
        with suppress(OSError):
            os.unlink(path)  # a link or a file: itself, never what it points at
        return
    stack: list[tuple[int, Iterator[str]]] = [(root, iter(_names(root)))]
    below: list[str] = []
    while stack:
        folder, names = stack[-1]
        name = next(names, None)
        if name is None:
            os.close(folder)
            stack.pop()
            if stack:
                with suppress(OSError):
                    os.rmdir(below.pop(), dir_fd=stack[-1][0])
            continue
        try:
            if not stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
                os.unlink(name, dir_fd=folder)
                continue
            inner = os.open(name, _DIRECTORY, dir_fd=folder)
        except OSError:
            continue
        below.append(name)
        stack.append((inner, iter(_names(inner))))
    with suppress(OSError):
        os.rmdir(path)


def _names(folder: int) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _open_root(source: str) -> int:
    try:
        return os.open(source, _DIRECTORY)
    except OSError as exc:
        # Linux says ENOTDIR, not ELOOP, for a link opened with O_DIRECTORY | O_NOFOLLOW.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(source):
            raise OutputRefused("META_OUTPUT itself was replaced by a link") from None
        if exc.errno == errno.ENOTDIR:
            raise OutputRefused("META_OUTPUT itself was replaced by a non-folder") from None
        raise


def _manifest(entries: list[bytes], files: int, size: int) -> Manifest:
    digest = hashlib.sha256()
    for entry in sorted(entries):
        digest.update(entry)
    return Manifest(files, size, digest.hexdigest())


def _walk(
    source: str, target: str | None, *, link: bool = False, where: str = ""
) -> tuple[list[bytes], int, int]:
    """Copy (or link, or only read) a folder: the manifest's entries, its files and bytes.
    Entries name each path as if the folder were at `where` inside the measured tree."""
    root = _open_root(source)
    label = os.fsencode(where + "/") if where else b""
    opened = [root]
    entries: list[bytes] = []
    files = size = 0
    try:
        inside = _real(root, source)
        if target is not None:
            os.makedirs(target, exist_ok=True)
            opened.append(os.open(target, _DIRECTORY))
        stack: list[tuple[int, int | None, str, Iterator[str]]] = [
            (root, opened[-1] if target is not None else None, "", iter(_names(root)))
        ]
        while stack:
            folder, copy, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                continue
            shown = prefix + name
            mode = os.lstat(name, dir_fd=folder).st_mode
            if stat.S_ISDIR(mode):
                if len(stack) >= MAX_DEPTH:
                    raise OutputRefused(f"the outputs nest more than {MAX_DEPTH} folders deep")
                inner = os.open(name, _DIRECTORY, dir_fd=folder)
                opened.append(inner)
                inner_copy = None
                if copy is not None:
                    os.mkdir(name, dir_fd=copy)
                    inner_copy = os.open(name, _DIRECTORY, dir_fd=copy)
                    opened.append(inner_copy)
                entries.append(b"d\0" + label + os.fsencode(shown) + b"\0")
                stack.append((inner, inner_copy, shown + "/", iter(_names(inner))))
                continue
            if stat.S_ISREG(mode):
                handle = os.open(name, _FILE, dir_fd=folder)
            elif stat.S_ISLNK(mode):
                handle = _open_link(root, inside, shown)
            else:
                raise OutputRefused(f"the output {shown!r} is not a regular file or folder")
            try:
                linked = (
                    link and stat.S_ISREG(mode) and copy is not None and _linked(folder, copy, name)
                )
                length, content = _copy_file(handle, shown, None if linked else copy, name)
            finally:
                os.close(handle)
            files += 1
            size += length
            entries.append(b"f\0" + label + os.fsencode(shown) + b"\0%d\0" % length + content)
    finally:
        for descriptor in opened:
            os.close(descriptor)
    return entries, files, size


def _linked(folder: int, copy: int, name: str) -> bool:
    """Whether `name` in `folder` could be hard-linked as `name` into `copy`."""
    try:
        os.link(name, name, src_dir_fd=folder, dst_dir_fd=copy, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
            return False
        raise
    return True


def _real(folder: int, fallback: str) -> str:
    """Where the opened folder really is (its path may have changed since it was opened)."""
    try:
        return os.readlink(f"/proc/self/fd/{folder}")
    except OSError:
        return os.path.realpath(fallback)


def _open_link(root: int, inside: str, shown: str) -> int:
    """The regular file a link inside the outputs leads to, opened part by part from the
    output folder with no link followed; `OutputRefused` for a link that leads anywhere else."""
    resolved = os.path.realpath(os.path.join(inside, shown))
    if os.path.commonpath([inside, resolved]) != inside:
        raise OutputRefused(f"the output {shown!r} links outside META_OUTPUT")
    parts = os.path.relpath(resolved, inside).split(os.sep)
    if parts == ["."]:
        raise OutputRefused(f"the output {shown!r} links to a folder")
    folder = root
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIRECTORY, dir_fd=folder)
            if folder != root:
                os.close(folder)
            folder = inner
        handle = os.open(parts[-1], _FILE, dir_fd=folder)
    except OSError:
        raise OutputRefused(f"the output {shown!r} links to no regular file") from None
    finally:
        if folder != root:
            os.close(folder)
    mode = os.fstat(handle).st_mode
    if not stat.S_ISREG(mode):
        os.close(handle)
        kind = "a folder" if stat.S_ISDIR(mode) else "no regular file"
        raise OutputRefused(f"the output {shown!r} links to {kind}")
    return handle


def _copy_file(source: int, shown: str, copy: int | None, name: str) -> tuple[int, bytes]:
    """Copy an opened file into the folder `copy` (when given) as `name`, keeping it sparse;
    its length and the digest of its content (the offsets and bytes of its non-zero blocks)."""
    status = os.fstat(source)
    if not stat.S_ISREG(status.st_mode):
        raise OutputRefused(f"the output {shown!r} is not a regular file or folder")
    length = status.st_size
    digest = hashlib.sha256()
    target = os.open(name, _NEW_FILE, 0o644, dir_fd=copy) if copy is not None else None
    try:
        for offset, block in _blocks(source, length):
            digest.update(offset.to_bytes(8, "big"))
            digest.update(block)
            if target is not None:
                view = memoryview(block)
                while view:
                    view = view[os.pwrite(target, view, offset + len(block) - len(view)) :]
        if target is not None:
            os.ftruncate(target, length)
    finally:
        if target is not None:
            os.close(target)
    return length, digest.digest()


def _blocks(source: int, length: int) -> Iterator[tuple[int, bytes]]:
    """The non-zero blocks of a file, at offsets that are multiples of BLOCK, holes skipped
    unread (where the system can say where they are)."""
    position = next_block = 0
    while position < length:
        try:
            data = os.lseek(source, position, os.SEEK_DATA)
            hole = os.lseek(source, data, os.SEEK_HOLE)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # nothing but a hole to the end
            data, hole = position, length  # a system that cannot say: read it all
        block = max(data // BLOCK * BLOCK, next_block)
        while block < min(hole, length):
            chunk = os.pread(source, min(BLOCK, length - block), block)
            if not chunk:
                return
            if chunk.count(0) != len(chunk):
                yield block, chunk
            block += BLOCK
        next_block = block
        position = max(block, hole)
