"""The cache of unit outputs that runs share: one folder of entries, content-addressed by key.

Layout (locally `--cache-dir`; in the cluster the store's `.cache` folder):

    ROOT/entries/<key[:2]>/<key>/entry.json   what made it: unit, run, when, the manifest
    ROOT/entries/<key[:2]>/<key>/outputs/     the outputs (absent when the unit wrote none)
    ROOT/tmp/<random>/                        an entry being written
    ROOT/locks/<key>.lock                     held while an entry of that key is written

An entry is written whole into `tmp/` and renamed into place: a reader sees all of it or none.
Two runs writing one key at once take the key's lock in turn; the second finds the first's
entry and keeps it. Outputs are hard-linked in and out where the file system allows (the cache
beside the store on one disk costs no second copy), copied otherwise; an entry's files are made
read-only, since a hard link shares them with every store that made or reused them. An entry is
taken only when its outputs still match its manifest, so an entry that is corrupt, half-removed
or whose linked files were changed is a miss, never a crash and never a wrong result.

A user's own cache (the local default) is theirs alone: its folders follow the umask, and an
entry is taken only when it and its record belong to this process's user, since whoever could
add to the folder could plant outputs that a later run would take as its own. A cache shared by
several users (the cluster's: the operator and the pods run as different uids, in a store only
the flow's pods mount) makes its folders writable by all, sticky, and takes any owner's entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meta.trees import Manifest, OutputRefused, link_tree, measure_tree, remove_tree

ENTRY = "entry.json"
OUTPUTS = "outputs"
KEY = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Entry:
    """One entry: its key, the unit and run that made it, when, and what its outputs hold."""

    key: str
    unit: str
    run: str
    created_at: float
    manifest: Manifest | None
    """None: the unit wrote no outputs."""
    path: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    """What else a hit gives back (a step's JSON result)."""

    @property
    def outputs(self) -> str:
        return os.path.join(self.path, OUTPUTS)

    @property
    def size(self) -> int:
        return self.manifest.bytes if self.manifest is not None else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "unit": self.unit,
            "run": self.run,
            "createdAt": self.created_at,
            "outputs": self.manifest.as_json() if self.manifest is not None else None,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


class CacheDir:
    def __init__(self, root: str, *, shared: bool = False) -> None:
        self.root = root
        self.shared = shared

    def _entry_path(self, key: str) -> str:
        return os.path.join(self.root, "entries", key[:2], key)

    def find(self, key: str) -> Entry | None:
        """The entry of `key` when there is a whole, unchanged one; else None."""
        entry = self._read(self._entry_path(key))
        if entry is None or entry.key != key:
            return None
        try:
            found: Manifest | None = measure_tree(entry.outputs)
        except FileNotFoundError:
            found = None
        except (OSError, OutputRefused):
            return None
        return entry if found == entry.manifest else None

    def put(
        self,
        key: str,
        parts: Sequence[tuple[str, str]],
        unit: str,
        run: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Make the entry of `key` from `parts` ((path inside the outputs, folder); a folder
        that is not there is a part that wrote nothing); an entry another run made meanwhile
        is kept and returned instead."""
        with self._locked(key):
            final = self._entry_path(key)
            current = self.find(key)
            if current is not None:
                return current
            temporary = os.path.join(self.root, "tmp")
            self._folder(temporary)
            building = tempfile.mkdtemp(prefix=key[:12] + ".", dir=temporary)
            if self.shared:
                # mkdtemp's 0700 would hide the entry from the other users sharing the cache.
                os.chmod(building, 0o755)
            try:
                manifest = _gather(parts, os.path.join(building, OUTPUTS))
                created, kept = time.time(), dict(extra or {})
                body = {
                    "key": key,
                    "unit": unit,
                    "run": run,
                    "createdAt": created,
                    "outputs": manifest.as_json() if manifest is not None else None,
                    "extra": kept,
                }
                with open(os.path.join(building, ENTRY), "w", encoding="utf-8") as handle:
                    json.dump(body, handle)
                # A corrupt entry in the way (found None above) goes first.
                remove_tree(final)
                self._folder(os.path.join(self.root, "entries"))
                self._folder(os.path.dirname(final))
                os.rename(building, final)
            except BaseException:
                remove_tree(building)
                raise
        return Entry(key, unit, run, created, manifest, final, kept)

    def restore(self, entry: Entry, target: str) -> Manifest | None:
        """Put `entry`'s outputs at `target` (made; nothing there when it wrote none)."""
        remove_tree(target)
        if entry.manifest is None:
            return None
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return link_tree(entry.outputs, target)

    def entries(self) -> Iterator[Entry]:
        """Every readable entry, in no order (a corrupt one is left out)."""
        base = os.path.join(self.root, "entries")
        for prefix in _listed(base):
            for key in _listed(os.path.join(base, prefix)):
                entry = self._read(os.path.join(base, prefix, key))
                if entry is not None:
                    yield entry

    def remove(self, key: str) -> None:
        with self._locked(key):
            remove_tree(self._entry_path(key))

    def clear(self, older_than: float | None = None) -> list[Entry]:
        """Remove the entries made more than `older_than` seconds ago (all when None), and
        what earlier writers left half-made; the entries removed."""
        now = time.time()
        removed = []
        for entry in list(self.entries()):
            if older_than is None or now - entry.created_at > older_than:
                self.remove(entry.key)
                removed.append(entry)
        for leftover in _listed(os.path.join(self.root, "tmp")):
            path = os.path.join(self.root, "tmp", leftover)
            with contextlib.suppress(OSError):
                if older_than is None or now - os.lstat(path).st_mtime > max(older_than, 3600):
                    remove_tree(path)
        if older_than is None:
            base = os.path.join(self.root, "entries")
            for prefix in _listed(base):
                remove_tree(os.path.join(base, prefix))
        return removed

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        locks = os.path.join(self.root, "locks")
        self._folder(locks)
        descriptor = os.open(
            os.path.join(locks, f"{key}.lock"),
            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
            0o666 if self.shared else 0o600,
        )
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _folder(self, path: str) -> None:
        """Make `path` (a folder of the cache: its `tmp`, `locks`, or an entry's prefix); in a
        shared cache, a folder every user of the cache may add to. A folder there already
        stays as it is."""
        if os.path.isdir(path):
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        if self.shared:
            with contextlib.suppress(PermissionError):
                os.chmod(path, 0o1777)

    def _read(self, path: str) -> Entry | None:
        try:
            with open(os.path.join(path, ENTRY), encoding="utf-8") as handle:
                if not self.shared and not _own(path, os.fstat(handle.fileno())):
                    return None
                body = json.load(handle)
            key, unit, run, created = body["key"], body["unit"], body["run"], body["createdAt"]
            extra = body.get("extra") or {}
            manifest = Manifest.from_json(body["outputs"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        valid = (
            isinstance(key, str)
            and KEY.match(key) is not None
            and isinstance(unit, str)
            and isinstance(run, str)
            and isinstance(created, int | float)
            and isinstance(extra, dict)
            and (manifest is not None or body["outputs"] is None)
        )
        if not valid:
            return None
        return Entry(key, unit, run, float(created), manifest, path, extra)


def _gather(parts: Sequence[tuple[str, str]], target: str) -> Manifest | None:
    """Link (or copy) each part's folder to its path under `target` (a part that wrote nothing
    is an empty folder there, as a combined section shows it); the manifest of the whole, or
    None for one unit that wrote nothing."""
    if len(parts) == 1 and not parts[0][0] and not os.path.isdir(parts[0][1]):
        return None
    os.makedirs(target)
    for inside, folder in parts:
        place = os.path.join(target, inside) if inside else target
        if os.path.isdir(folder):
            link_tree(folder, place)
        else:
            os.makedirs(place, exist_ok=True)
    _read_only(target)
    return measure_tree(target)


def _read_only(folder: str) -> None:
    """Take the write bits off every file of an entry: a file shares its inode with the store
    of each run that made or reused it, and an edit in place would change them all."""
    for parent, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, mode & ~0o222)


def _listed(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def cache_home(environ: Mapping[str, str] | None = None) -> str:
    """meta-orchestrator's cache folder on this machine: $META_CACHE_DIR, else
    $XDG_CACHE_HOME/meta-orchestrator or ~/.cache/meta-orchestrator, as the test clusters' and
    images' builds use it."""
    environ = os.environ if environ is None else environ
    return environ.get("META_CACHE_DIR") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "meta-orchestrator",
    )


def default_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """Where runs on this machine share their cache: `outputs` in `cache_home`."""
    return os.path.join(cache_home(environ), "outputs")


def _own(entry: str, record: os.stat_result) -> bool:
    """Whether an entry's folder and its record (opened) are this process's user's."""
    try:
        folder = os.lstat(entry)
    except OSError:
        return False
    return folder.st_uid == record.st_uid == os.geteuid()
