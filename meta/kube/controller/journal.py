"""The journal of a flow run by the operator, kept in the cluster in chunked ConfigMaps.

Finished units are appended in batches: each flush adds one key to the newest chunk (a merge
patch, so earlier keys are not sent again); a chunk past CHUNK_BYTES is closed and the next one
is made. etcd stores each patched chunk whole again, so a batch is held until it is a fair part
of its chunk (REWRITE_FACTOR): what a chunk costs etcd stays a few times its size instead of
growing with its square. The ConfigMaps are owned by their MetaFlow, so deleting the flow
removes them. A record lost to a crash between a unit's end and its flush costs nothing: the pod
itself is still there, ended, and a restarted operator adopts it instead of running the unit
again.

Once the flow has ended, `compact` moves the journal into a file of the store and the cluster
keeps only the records of units that did not finish for good and the attempts of units that were
retried: etcd is not the archive of every flow ever run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any

from meta.engine.records import UnitRecord, finished_for_good, worth_a_look
from meta.kube import metrics
from meta.kube.api import ApiFailed, Conflict, KubeApi, NotFound
from meta.kube.layout import journal_config_map, journal_path, short_name
from meta.kube.types import FlowOwner

CHUNK_BYTES = 700 * 1024
"""A ConfigMap holds at most 1 MiB."""
FLUSH_SECONDS = 0.5
REWRITE_FACTOR = 8
"""A batch is held until it is at least 1/REWRITE_FACTOR of the chunk it is added to: etcd then
writes at most about REWRITE_FACTOR + 1 times each chunk's size over its life."""
MAX_HOLD_SECONDS = 10.0
"""How long a small batch is held at most: a slow flow's journal still follows it."""
MAX_RETRY_SECONDS = 30.0
log = logging.getLogger(__name__)
RECORD_FIELDS = tuple(field.name for field in dataclass_fields(UnitRecord))
KEPT_BYTES = 256 * 1024
"""What the cluster keeps of a compacted journal: the records of units that did not finish for
good and every attempt of units that were retried (the ones worth a look), up to this many
bytes; the status counts those left out (`notKept`)."""


def chunk_name(owner: FlowOwner, index: int) -> str:
    return f"{short_name(owner.name)}-journal-{index}"


class ConfigMapJournal:
    def __init__(self, api: KubeApi, owner: FlowOwner) -> None:
        self._api = api
        self._owner = owner
        self._finished: dict[str, UnitRecord] = {}
        self._pending: list[tuple[str, str]] = []
        """Records not yet written: each line, and the unit whose pod it lets go ("": none)."""
        self._pending_bytes = 0
        self._written = 0
        """Records ever written."""
        self._chunk = 0
        self._chunk_bytes = 0
        self._keys = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self.chunks: list[str] = []
        self.on_written: Callable[[Sequence[str]], None] | None = None
        """Told the unit ids of each batch of records once they are in the cluster: until
        then, a unit's ended pod is its only record (pod GC waits for this)."""

    async def load(self) -> None:
        """Read the chunks earlier sessions wrote: numbered from 0, each probed until one is
        not there (a chunk may have been closed before it was full)."""
        while True:
            name = chunk_name(self._owner, self._chunk)
            try:
                found = await self._api.get_config_map(self._owner.namespace, name)
            except NotFound:
                break
            data: Mapping[str, str] = found.get("data") or {}
            self.chunks.append(name)
            self._chunk_bytes = sum(len(v) for v in data.values())
            self._keys = len(data)
            for key in sorted(data):
                for line in data[key].splitlines():
                    record = UnitRecord(**json.loads(line))
                    if finished_for_good(record.state, record.reason):
                        # Reported again as resumed: the status counts it as cached.
                        self._finished[record.id] = replace(record, resumed=True)
            self._chunk += 1
        if self.chunks:
            # Go on writing into the last chunk there is.
            self._chunk -= 1
        else:
            self._chunk_bytes = self._keys = 0

    def finished(self) -> Mapping[str, UnitRecord]:
        return self._finished

    def attempts_made(self, uid: str) -> int:
        """Always 0: a restarted operator numbers a unit's attempts from 1 again, so that the
        pod of the attempt it was watching (named by its number) is found and adopted."""
        return 0

    def record_started(self, record: UnitRecord) -> None:
        """Not written: the pod itself records that the attempt started."""

    def record_finished(self, record: UnitRecord) -> None:
        fields = {name: getattr(record, name) for name in RECORD_FIELDS}
        line = json.dumps(fields, separators=(",", ":"))
        if len(line) > CHUNK_BYTES:
            # A section's result gathering many steps' may pass what a ConfigMap holds: the
            # record is kept without it (its pod left it in the store), not lost whole.
            log.warning(
                "journal of %s: the result of %s is too big to keep", self._owner.name, record.id
            )
            line = json.dumps({**fields, "result": None}, separators=(",", ":"))
        # A cancelled attempt's record does not stand for its pod's end: that pod stays.
        self._pending.append((line, "" if record.state == "cancelled" else record.id))
        self._pending_bytes += len(line) + 1
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        self._wake.set()

    async def _flush_loop(self) -> None:
        """Flush batches; a write the API server refuses is kept and tried again later (the
        pods are the record meanwhile), it never stops the journal."""
        delay = FLUSH_SECONDS
        while True:
            await self._wake.wait()
            self._wake.clear()
            held = 0.0
            while held < MAX_HOLD_SECONDS and self._rewrites_much():
                await asyncio.sleep(FLUSH_SECONDS)
                held += FLUSH_SECONDS
            try:
                await self.flush()
                delay = FLUSH_SECONDS
            except ApiFailed as failed:
                log.warning("journal of %s: %s; trying again", self._owner.name, failed)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                self._wake.set()
            await asyncio.sleep(delay)

    def _rewrites_much(self) -> bool:
        """Whether writing what is pending now would rewrite a chunk far bigger than it."""
        pending, chunk = self._pending_bytes, self._chunk_bytes
        return pending * REWRITE_FACTOR < chunk and chunk + pending <= CHUNK_BYTES

    async def flush(self) -> None:
        """Write what is pending, one key per batch of at most CHUNK_BYTES (records carry
        results of up to 64 KiB, so a burst of them must not make a key past a ConfigMap). Records
        that end meanwhile wait for the next flush: held, they make a batch worth its rewrite.

        A batch on its way is finished even when its caller is cancelled: the API client's
        call goes on in its thread regardless, and landing after a later batch sent under the
        same key, it would overwrite that one's records."""
        goal = self._written + len(self._pending)
        while self._written < goal:
            writing = self._writing
            if writing is None:
                writing = self._writing = asyncio.ensure_future(self._write_batch())
            try:
                await asyncio.shield(writing)
            finally:
                if writing.done() and self._writing is writing:
                    self._writing = None

    async def _write_batch(self) -> None:
        size, count = 0, 0
        for line, _ in self._pending:
            if count and size + len(line) + 1 > CHUNK_BYTES:
                break
            size, count = size + len(line) + 1, count + 1
        batch = self._pending[:count]
        try:
            await self._write("".join(line + "\n" for line, _ in batch))
        except ApiFailed:
            metrics.journal_flush(written=False)
            raise
        metrics.journal_flush(written=True)
        del self._pending[:count]
        self._pending_bytes -= size
        self._written += count
        if self.on_written is not None:
            self.on_written([uid for _, uid in batch])

    async def _write(self, text: str) -> None:
        if self._chunk_bytes and self._chunk_bytes + len(text) > CHUNK_BYTES:
            self._chunk += 1
            self._chunk_bytes = self._keys = 0
        name = chunk_name(self._owner, self._chunk)
        key = f"{self._keys:06d}"
        if self._keys == 0 and name not in self.chunks:
            body = journal_config_map(self._owner, name, key, text)
            try:
                await self._api.create_config_map(self._owner.namespace, body)
            except Conflict:
                # Made by a session that did not load it: add after what it holds.
                found = await self._api.get_config_map(self._owner.namespace, name)
                data = found.get("data") or {}
                self._keys, self._chunk_bytes = len(data), sum(len(v) for v in data.values())
                key = f"{self._keys:06d}"
                await self._api.patch_config_map(self._owner.namespace, name, {"data": {key: text}})
            self.chunks.append(name)
        else:
            await self._api.patch_config_map(self._owner.namespace, name, {"data": {key: text}})
        self._keys += 1
        self._chunk_bytes += len(text)

    async def close(self) -> None:
        """Stop the flusher and write what is pending, once; what cannot be written now is
        left (its units' pods still say they ended)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            await self.flush()
        except ApiFailed as failed:
            log.warning("journal of %s: %s; left unwritten", self._owner.name, failed)


def kept_name(owner: FlowOwner) -> str:
    """The one journal ConfigMap an ended flow keeps once its journal is in the store."""
    return f"{short_name(owner.name)}-journal-kept"


async def compact(
    api: KubeApi, owner: FlowOwner, chunks: Sequence[str], store_dir: str
) -> dict[str, Any]:
    """Copy an ended flow's journal into the store, whole, and keep in the cluster only the
    records worth a look (`_worth_a_look`: in one ConfigMap, named like a chunk so the
    journal's readers read it as one); the status fields that say so. The chunks are left
    to `drop_chunks`, once the status names the file: until then, compacting again is safe.
    One chunk at a time is in memory: a 100,000-unit journal is some 30 MB."""
    path = journal_path(owner)
    file = _WholeFile(f"{store_dir.rstrip('/')}/{path}")
    await asyncio.to_thread(file.open)
    units, size, kept, kept_size, not_kept = 0, 0, [], 0, 0
    try:
        for name in chunks:
            try:
                found = await api.get_config_map(owner.namespace, name)
            except NotFound:
                continue
            data: Mapping[str, str] = found.get("data") or {}
            text = "".join(data[key] for key in sorted(data))
            await asyncio.to_thread(file.write, text)
            size += len(text)
            for line in text.splitlines():
                units += 1
                if not _worth_a_look(json.loads(line)):
                    continue
                if kept_size + len(line) + 1 <= KEPT_BYTES:
                    kept.append(line)
                    kept_size += len(line) + 1
                else:
                    not_kept += 1
        await asyncio.to_thread(file.close)
    finally:
        await asyncio.to_thread(file.discard)
    left: list[str] = []
    if kept:
        name = kept_name(owner)
        body = journal_config_map(owner, name, f"{0:06d}", "".join(f"{k}\n" for k in kept))
        try:
            await api.create_config_map(owner.namespace, body)
        except Conflict:
            # Made by an earlier try that stopped before the status named the file.
            await api.patch_config_map(owner.namespace, name, {"data": body["data"]})
        left.append(name)
    compacted = {
        "path": path, "units": units, "bytes": size, "kept": len(kept), "notKept": not_kept,
    }  # fmt: skip
    return {"journal": left, "journalCompacted": compacted}


def _worth_a_look(record: Mapping[str, Any]) -> bool:
    """Whether the cluster keeps a record once the journal is compacted (`meta status` shows a
    retried unit's attempts side by side)."""
    return worth_a_look(
        record["state"],
        record.get("reason", ""),
        int(record.get("attempts", 0)),
        bool(record.get("retrying")),
    )


async def drop_chunks(api: KubeApi, owner: FlowOwner, chunks: Sequence[str]) -> None:
    """Delete the chunks a compacted journal no longer needs."""
    for name in chunks:
        if name != kept_name(owner):
            await api.delete_config_map(owner.namespace, name)


class _WholeFile:
    """Written to a partial file, then renamed: a reader (or a later try) never finds half of
    it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.partial = f"{path}.partial"
        self._handle: Any = None

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._handle = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115

    def write(self, text: str) -> None:
        self._handle.write(text)

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        """After `close`, nothing; after a failure, the partial file goes."""
        if not self._handle.closed:
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.partial)
