"""Reusing a unit's outputs across runs: the cache key of a step or a section, and the hit that
stands in for running it.

A key is a digest of what decides a unit's result. For a step: its rendered command, env (each
value by its digest only), image, the value of META_INPUT, the content of the files and
folders it is given (named whole or as an option's `--name=VALUE`: a path relative to the flow's
folder, such as a script beside the flow, or an absolute one inside it; the flow's file inputs
wherever they are named), the digests of its upstream outputs and its `cache.version`. Another
absolute path counts as text: a log file a step appends to does not make every run a miss; so
does a folder past MAX_FOLDER_FILES files or MAX_FOLDER_BYTES. For a section: its units'
definitions, its input and iteration, the flow's inputs, the files it names, what decides the
flows it references (their files, their file inputs, the files they name, down their own
references), its upstream digests, its upstream's states and results, and its version.
Where a unit was written (file, pointer), its id and the attempt are not part of it: an edit
elsewhere in a flow leaves a unit's key as it was, so an edited flow runs
again only what the edit changed.

The runtime gives the engine a `StoreCache`: the shared `CacheDir`, and where its driver keeps a
unit's outputs (to read them into an entry, to restore a hit to).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from meta.cachedir import CacheDir, Entry
from meta.engine.driver import StepTask
from meta.engine.frontiers import Done
from meta.engine.records import Journal, Listener, UnitRecord
from meta.engine.visit import Visit, named, upstream_variable
from meta.errors import MetaError
from meta.flow.model import Cache, EnvValue, FileInput, FlowRef, Section, Step, Unit
from meta.plan.plan import Plan, walk_units
from meta.trees import Manifest, OutputRefused, measure_parts, remove_tree

KEY_FORMAT = 1
"""Part of every key: a change to how keys are made misses every older entry."""
MAX_NAMED_STRINGS = 1000
MAX_FOLDER_FILES = 1000
MAX_FOLDER_BYTES = 64 << 20
"""A folder named in a unit counts by its files' content up to these bounds (`.` in a command
must not read a whole tree at every key), past them by its name only."""
"""Strings of a step's input looked at for file names (a large input is its own digest)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class StoreCache:
    """The shared cache as one run uses it."""

    directory: CacheDir
    run: str
    """How entries this run makes name it (a workdir, a MetaFlow's namespace/name)."""
    outputs: Callable[[str], str]
    """Where the driver keeps a finished unit's outputs."""
    place: Callable[[str], str] | None = None
    """Where a hit's outputs go for a unit (default: `outputs`)."""
    placed: Callable[[str, Manifest | None], None] | None = None
    """Told of each hit once its outputs are in place."""
    env_value: Callable[[EnvValue], str] = str
    """What a key holds of a variable whose value comes from elsewhere (`fromEnv`,
    `secretRef`): locally a digest of its value, so a changed secret changes the key without
    the key holding it; where values are not known (the operator), its reference."""
    leaves: Callable[[str], Sequence[tuple[str, str]]] | None = None
    """(path inside, unit id) of the folders a unit's outputs are made of, for a driver that
    combines outputs itself (a child flow's, in the cluster); default: as the engine combined
    them."""
    kept_out: Callable[[str], bool] | None = None
    """Whether a folder inside a folder a unit names is left out of its key: a run's workdir or
    the cache itself (beside a flow that names `.`) changes with every run, and would make every
    run miss."""


def cache_of_step(step: Step, defaults: Cache) -> Cache | None:
    cache = step.cache if step.cache is not None else defaults
    return cache if cache.enabled else None


def cache_of_section(section: Section) -> Cache | None:
    return section.cache if section.cache is not None and section.cache.enabled else None


def uses_cache(section: Section, defaults: Cache) -> bool:
    """Whether a unit inside `section` says `cache:` (or takes it from the defaults)."""
    for unit in walk_units(section):
        if isinstance(unit, Step) and cache_of_step(unit, defaults) is not None:
            return True
        if isinstance(unit, Section) and unit is not section and cache_of_section(unit):
            return True
    return False


class Caching:
    """The engine's side of the cache: keys, hits reported as `cached`, entries kept."""

    def __init__(self, store: StoreCache | None, listener: Listener, journal: Journal) -> None:
        self.store = store
        self._listener = listener
        self._journal = journal
        self._combined: dict[str, list[tuple[str, str]]] = {}
        self._digests: dict[str, str] = {}
        self._files: dict[tuple[str, int, int], str] = {}
        self._large: set[str] = set()
        """Folders too large to count by content, each warned of once."""

    def combined(self, unit_id: str, parts: Sequence[tuple[str, str]]) -> None:
        """A section's outputs are these parts (as the driver was told to combine them)."""
        self._combined[unit_id] = list(parts)

    async def step_key(self, task: StepTask, cache: Cache, visit: Visit) -> str:
        return await asyncio.to_thread(self._step_key, task, cache, visit)

    def _step_key(self, task: StepTask, cache: Cache, visit: Visit) -> str:
        places = _Places(visit)
        literal = [value for value in task.env.values() if isinstance(value, str)]
        strings = [*task.command, *literal, *_strings(task.input)]
        given = self.store.env_value if self.store is not None else str
        env = sorted(
            (name, value if isinstance(value, str) else given(value))
            for name, value in task.env.items()
        )
        return _digest(
            {
                "format": KEY_FORMAT,
                "kind": "step",
                "command": places.of(list(task.command)),
                "env": {name: _text_digest(places.of(value)) for name, value in env},
                "image": task.image,
                "input": places.of(task.input),
                "files": self._named_files(strings, task.workdir, places),
                "upstream": self._upstream(visit.upstream),
                "version": cache.version,
            }
        )

    async def section_key(self, visit: Visit, section: Section, cache: Cache) -> str:
        return await asyncio.to_thread(self._section_key, visit, section, cache)

    def _section_key(self, visit: Visit, section: Section, cache: Cache) -> str:
        places = _Places(visit)
        definition = _definition(section)
        frame = visit.frame
        flows = self._referenced(section, frame.plan, places)
        inputs = frame.variables["inputs"]
        strings = [*_strings(definition), *_strings(inputs), *_strings(visit.context.input)]
        strings = _with_flow_dir(strings, frame.directory)
        return _digest(
            {
                "format": KEY_FORMAT,
                "kind": "section",
                "definition": places.of(definition),
                "flows": flows,
                "inputs": places.of(inputs),
                "input": places.of(visit.context.input),
                "iteration": places.of(visit.context.iteration),
                "hidden": list(visit.context.hidden),
                "files": self._named_files(strings, frame.directory, places),
                "upstream": self._upstream(visit.upstream),
                "seen": _seen(upstream_variable(visit.upstream)),
                "version": cache.version,
            }
        )

    def _referenced(self, section: Section, plan: Plan, places: _Places) -> list[Any]:
        """What decides the flows a section references, reference by reference (one flow
        referenced twice may be given other inputs): the flow itself, the content of its file
        inputs and of the files its units name (beside it), and so on for the flows it
        references in turn."""
        found: list[Any] = []
        pending: list[tuple[Unit, Plan]] = [(section, plan)]
        while pending:
            current, owner = pending.pop(0)
            for unit in walk_units(current):
                if not isinstance(unit, FlowRef):
                    continue
                child = owner.subplan(unit)
                given = {
                    key: self._input_digest(str(spec.path))
                    for key, spec in child.inputs.items()
                    if isinstance(spec, FileInput)
                }
                directory = str(child.flow.source.parent)
                named = _with_flow_dir(_strings(_definition(child.flow.root)), directory)
                found.append(
                    {
                        "path": places.of(str(unit.path)),
                        "flow": self._flow_digest(unit.path, plan.flow.embedded),
                        "inputs": given,
                        "files": self._named_files(named, directory, places),
                    }
                )
                pending.append((child.flow.root, child))
        return found

    async def reused(self, key: str, visit: Visit) -> Entry | None:
        """The entry of `key` when one now stands for the visited unit's outputs (what else it
        kept is in its `extra`): the unit is reported (and journaled) as `cached` from the run
        that made the entry. None: a miss."""
        store = self.store
        assert store is not None
        try:
            entry = await asyncio.to_thread(self._restored, store, key, visit.uid)
        except (OSError, MetaError) as exc:
            log.warning("cache entry %s of %s not reused: %s", key[:12], visit.uid, exc)
            return None
        if entry is None:
            return None
        now = time.time()
        parent = visit.parent
        record = UnitRecord(
            visit.uid, visit.name, parent.id, parent.scope, "cached", 0, now, now,
            cached_from=entry.run, result=entry.extra.get("result"),
        )  # fmt: skip
        self._journal.record_finished(record)
        self._listener.unit_finished(record)
        return entry

    def _restored(self, store: StoreCache, key: str, unit_id: str) -> Entry | None:
        entry = store.directory.find(key)
        if entry is None:
            return None
        target = (store.place or store.outputs)(unit_id)
        try:
            manifest = store.directory.restore(entry, target)
        except BaseException:
            # Half restored (the entry removed meanwhile): the unit runs, into a clean folder.
            remove_tree(target)
            raise
        self._digests[unit_id] = _outputs_digest(manifest)
        if store.placed is not None:
            store.placed(unit_id, manifest)
        return entry

    async def keep(
        self, key: str, visit: Visit, done: Done, extra: Mapping[str, Any] | None = None
    ) -> None:
        """Make the entry of `key` from the outputs `done` stands for (and `extra`, for a hit
        to give back); a cache that cannot be written is warned of, never a failure of the
        run."""
        store = self.store
        assert store is not None
        parts = [(inside, store.outputs(unit)) for inside, unit in self._leaves(done.unit_id)]
        try:
            await asyncio.to_thread(store.directory.put, key, parts, visit.uid, store.run, extra)
        except (OSError, MetaError) as exc:
            log.warning("cache entry of %s not kept: %s", visit.uid, exc)

    def _upstream(self, upstream: tuple[Done, ...]) -> list[list[str]]:
        return [[name, self._digest_of(unit)] for name, unit in named(upstream)]

    def _digest_of(self, unit_id: str) -> str:
        """The digest of the outputs a unit stands for, as its consumers see them: a combined
        section's measured part by part as one tree, the tree a cache hit restores."""
        known = self._digests.get(unit_id)
        if known is not None:
            return known
        store = self.store
        assert store is not None
        parts = [(inside, store.outputs(leaf)) for inside, leaf in self._leaves(unit_id)]
        try:
            manifest = measure_parts(parts)
        except (OSError, OutputRefused) as exc:
            # Unreadable outputs match no entry: this unit's key is one no run made.
            manifest = Manifest(-1, -1, f"unreadable: {exc}")
        digest = _outputs_digest(manifest)
        self._digests[unit_id] = digest
        return digest

    def _leaves(self, unit_id: str) -> Sequence[tuple[str, str]]:
        """(path inside the outputs, unit id) of every folder a unit's outputs are made of."""
        if self.store is not None and self.store.leaves is not None:
            return self.store.leaves(unit_id)
        return self._combined_leaves(unit_id, "")

    def _combined_leaves(self, unit_id: str, inside: str) -> list[tuple[str, str]]:
        parts = self._combined.get(unit_id)
        if parts is None:
            return [(inside, unit_id)]
        leaves: list[tuple[str, str]] = []
        for name, part in parts:
            leaves.extend(self._combined_leaves(part, f"{inside}/{name}" if inside else name))
        return leaves

    def _flow_digest(self, path: Path, embedded: Mapping[Path, Any]) -> str:
        """The referenced flow as the run reads it: embedded in the resource, or its file."""
        if path in embedded:
            return _digest(embedded[path])
        try:
            return self._file_digest(str(path))
        except OSError:
            return "missing"

    def _file_digest(self, path: str) -> str:
        status = os.stat(path)
        memo = (path, status.st_size, status.st_mtime_ns)
        digest = self._files.get(memo)
        if digest is None:
            digest = file_digest(path)
            self._files[memo] = digest
        return digest

    def _named_files(
        self, strings: Sequence[str], directory: str, places: _Places
    ) -> dict[str, str]:
        """The content digest of every file or folder a string names, whole or as the value of
        an option (`--file=data/a.txt`): relative to `directory`, inside the flow's folder, or
        one of the flow's file inputs (by its name, wherever the run has it)."""
        found = {}
        for text in strings:
            if not text or len(text) > 4096 or "\0" in text:
                continue
            for given in _paths_in(text):
                if os.path.isabs(given) and not places.owns(given):
                    continue
                path = given if os.path.isabs(given) else os.path.join(directory, given)
                try:
                    digest = self._path_digest(path)
                except (OSError, ValueError):
                    continue
                if digest is not None:
                    found[places.of(given)] = digest
        return found

    def _path_digest(self, path: str) -> str | None:
        """A file's content digest; a folder's, of its files' names and digests (None past the
        bounds, or for anything else)."""
        if os.path.isfile(path):
            return self._file_digest(path)
        if not os.path.isdir(path):
            return None
        listed: list[tuple[str, str]] = []
        size = 0
        kept_out = self.store.kept_out if self.store is not None else None
        for parent, folders, files in os.walk(path):
            if kept_out is not None:
                folders[:] = [f for f in folders if not kept_out(os.path.join(parent, f))]
            folders.sort()
            for name in sorted(files):
                inside = os.path.join(parent, name)
                status = os.lstat(inside)
                size += status.st_size
                if len(listed) >= MAX_FOLDER_FILES or size > MAX_FOLDER_BYTES:
                    self._too_large(path)
                    return None
                if stat.S_ISLNK(status.st_mode):
                    listed.append((os.path.relpath(inside, path), "->" + os.readlink(inside)))
                elif stat.S_ISREG(status.st_mode):
                    listed.append((os.path.relpath(inside, path), self._file_digest(inside)))
        return _digest(listed)

    def _input_digest(self, path: str) -> str | None:
        try:
            return self._path_digest(path)
        except (OSError, ValueError) as exc:
            # The run reads it too, and says why it cannot: the key only has to differ.
            return f"unreadable: {exc}"

    def _too_large(self, folder: str) -> None:
        if folder not in self._large:
            self._large.add(folder)
            log.warning(
                "note: %s holds more than %d files or %d MiB: cache keys count it by its name "
                "only (a change inside it is no miss: bump cache.version)",
                folder,
                MAX_FOLDER_FILES,
                MAX_FOLDER_BYTES >> 20,
            )


class _Places:
    """Where a run has its flow and its file inputs, said in a key by name: each run of a flow
    in the cluster has its input files in a folder of its own, and a flow file may move."""

    def __init__(self, visit: Visit) -> None:
        plan = visit.frame.plan
        self.inputs = {
            str(spec.path): f"@input:{name}"
            for name, spec in plan.inputs.items()
            if isinstance(spec, FileInput)
        }
        found = list(self.inputs.items())
        self._flow = ""
        if os.path.dirname(visit.frame.directory) != visit.frame.directory:
            # Not the file system's root, whose "/" is in every path.
            self._flow = visit.frame.directory
            found.append((visit.frame.directory, "@flow"))
        # Longest first: an input inside the flow's folder is named as the input.
        self._names = sorted(found, key=lambda pair: -len(pair[0]))

    def owns(self, path: str) -> bool:
        """Whether an absolute path is one of the flow's file inputs or inside its folder."""
        if path in self.inputs:
            return True
        return bool(self._flow) and path.startswith(self._flow.rstrip("/") + "/")

    def of(self, value: Any) -> Any:
        """`value` (JSON-like) with every place in its strings said by name."""
        if isinstance(value, str):
            for path, name in self._names:
                if path in value:
                    value = value.replace(path, name)
            return value
        if isinstance(value, Mapping):
            return {key: self.of(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.of(item) for item in value]
        return value


def _paths_in(text: str) -> Iterator[str]:
    """What a string may name: itself, and the value of an option written `--name=VALUE`."""
    yield text
    if text.startswith("-") and "=" in text:
        yield text.partition("=")[2]


def _strings(value: Any) -> Iterator[str]:
    """The strings in a JSON-like value, the first MAX_NAMED_STRINGS of them."""
    pending = [value]
    count = 0
    while pending and count < MAX_NAMED_STRINGS:
        current = pending.pop()
        if isinstance(current, str):
            count += 1
            yield current
        elif isinstance(current, Mapping):
            pending.extend(current.values())
        elif isinstance(current, list | tuple):
            pending.extend(current)


FLOW_DIR = re.compile(r"\{\{-?\s*flow\.dir\s*-?\}\}")
"""`{{ flow.dir }}` in a template: what a section's units name through it is a file beside the
flow (a section's key reads its units as written, not rendered)."""


def _with_flow_dir(strings: Iterable[str], directory: str) -> list[str]:
    """`strings` with each `{{ flow.dir }}` in them read as `directory`, so that the files they
    name through it count."""
    return [FLOW_DIR.sub(lambda _: directory, text) if "flow" in text else text for text in strings]


def _definition(value: Any) -> Any:
    """A unit's definition as plain JSON, without where it was written."""
    if is_dataclass(value) and not isinstance(value, type):
        encoded = {
            f.name: _definition(getattr(value, f.name)) for f in fields(value) if f.name != "origin"
        }
        return {"@": type(value).__name__, **encoded}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _definition(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_definition(v) for v in value]
    return value


def _seen(upstream: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What a section's templates read of its upstream units, but whether each came from the
    cache (a unit reused is the same unit)."""
    return {name: [part["state"], part["result"]] for name, part in upstream.items()}


def _outputs_digest(manifest: Manifest | None) -> str:
    return "none" if manifest is None else f"{manifest.files}:{manifest.bytes}:{manifest.digest}"


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str) -> str:
    """The SHA-256 of a file's content (what a cache key and a run's `inputDigests` take)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
