"""The journal of a flow run by the operator, kept in the cluster in chunked ConfigMaps.

Finished units are appended in batches: each flush adds one key to the newest chunk (a merge
patch, so earlier keys are not sent again); a chunk past CHUNK_BYTES is closed and the next one
is made. The ConfigMaps are owned by their MetaFlow, so deleting the flow removes them. A record
lost to a crash between a unit's end and its flush costs nothing: the pod itself is still there,
ended, and a restarted operator adopts it instead of running the unit again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace

from meta.engine.records import UnitRecord, finished_for_good
from meta.kube import metrics
from meta.kube.api import ApiFailed, Conflict, KubeApi, NotFound
from meta.kube.layout import journal_config_map, short_name
from meta.kube.types import FlowOwner

CHUNK_BYTES = 700 * 1024
"""A ConfigMap holds at most 1 MiB."""
FLUSH_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
log = logging.getLogger(__name__)
RECORD_FIELDS = tuple(field.name for field in dataclass_fields(UnitRecord))


def chunk_name(owner: FlowOwner, index: int) -> str:
    return f"{short_name(owner.name)}-journal-{index}"


class ConfigMapJournal:
    def __init__(self, api: KubeApi, owner: FlowOwner) -> None:
        self._api = api
        self._owner = owner
        self._finished: dict[str, UnitRecord] = {}
        self._pending: list[str] = []
        self._chunk = 0
        self._chunk_bytes = 0
        self._keys = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.chunks: list[str] = []

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
        self._pending.append(line)
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
            try:
                await self.flush()
                delay = FLUSH_SECONDS
            except ApiFailed as failed:
                log.warning("journal of %s: %s; trying again", self._owner.name, failed)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                self._wake.set()
            await asyncio.sleep(delay)

    async def flush(self) -> None:
        """Write what is pending, one key per batch of at most CHUNK_BYTES (records carry
        results of up to 64 KiB, so a burst of them must not make a key past a ConfigMap)."""
        while self._pending:
            size, count = 0, 0
            for line in self._pending:
                if count and size + len(line) + 1 > CHUNK_BYTES:
                    break
                size, count = size + len(line) + 1, count + 1
            lines = self._pending[:count]
            try:
                await self._write("\n".join(lines) + "\n")
            except ApiFailed:
                metrics.journal_flush(written=False)
                raise
            metrics.journal_flush(written=True)
            del self._pending[:count]

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
