"""The step slots of a micro pod, as the quarterback sees them.

Each slot is a container running the launcher, connected to the quarterback's Unix socket on
the shared scratch volume. A step needs a free slot running its image: one that has it is
taken; otherwise a free slot's image is swapped in place (a patch of the quarterback's own pod,
the one thing its Role lets it do). The kubelet then restarts that container with the new image
(the pod, its IP and `/scratch` stay), and the new launcher connects again. At most as many
steps run as there are slots, so a fan-out whose width is known only at run time still fits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from meta.errors import MetaError
from meta.kube.quarterback.launcher import CLOSED

SWAP_SECONDS = 300.0
"""How long a slot may take to come back with a new image (the image may need a pull)."""

Swap = Callable[[int, str], Awaitable[None]]
"""Put this image into this slot's container (patch the pod)."""


class SlotLost(MetaError):
    """A slot's launcher went away while a step ran in it."""


@dataclass
class Slot:
    index: int
    image: str
    writer: asyncio.StreamWriter | None = None
    busy: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at each connection of a launcher."""
    connections: int = 0
    waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    swaps: int = 0


class Slots:
    def __init__(self, images: list[str], swap: Swap) -> None:
        self.slots = [Slot(i, image) for i, image in enumerate(images)]
        self._swap = swap
        self._free = asyncio.Condition()
        self._server: asyncio.AbstractServer | None = None
        self.peak = 0

    async def serve(self, socket_path: str) -> None:
        self._server = await asyncio.start_unix_server(self._connected, path=socket_path)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = json.loads(await reader.readline())
        slot = self.slots[int(hello["slot"])]
        slot.writer = writer
        slot.connections += 1
        slot.arrived.set()
        try:
            while line := await reader.readline():
                message = json.loads(line)
                waiter = slot.waiting.pop(str(message.get("ended")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
        finally:
            if slot.writer is writer:
                slot.writer = None
            for waiter in slot.waiting.values():
                if not waiter.done():
                    waiter.set_exception(SlotLost(f"slot {slot.index}'s launcher went away"))
            slot.waiting.clear()

    async def acquire(self, image: str) -> Slot:
        """A free slot running `image`, swapping one in place when none runs it."""
        async with self._free:
            while True:
                free = [s for s in self.slots if not s.busy]
                chosen = next((s for s in free if s.image == image), None)
                if chosen is None and free:
                    chosen = min(free, key=lambda s: s.swaps)
                if chosen is not None:
                    chosen.busy = True
                    break
                await self._free.wait()
        self.peak = max(self.peak, sum(s.busy for s in self.slots))
        try:
            seen = chosen.connections
            if chosen.image != image:
                await self._swap(chosen.index, image)
                # Only once the pod says so: a refused swap leaves the slot as it was.
                chosen.swaps += 1
                chosen.image = image
            else:
                seen = 0
            async with asyncio.timeout(SWAP_SECONDS):
                # After a swap, the launcher of the new image: one that connected after it.
                while chosen.connections <= seen or chosen.writer is None:
                    chosen.arrived.clear()
                    await chosen.arrived.wait()
        except BaseException:
            await self.release(chosen)
            raise
        return chosen

    async def release(self, slot: Slot) -> None:
        async with self._free:
            slot.busy = False
            self._free.notify()

    def order(self, slot: Slot, order: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send an order; the future resolves with the launcher's answer."""
        if slot.writer is None:
            raise SlotLost(f"slot {slot.index} is not connected")
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        slot.waiting[str(order["id"])] = waiter
        slot.writer.write((json.dumps(order) + "\n").encode())
        return waiter

    def stop(self, slot: Slot, unit: str) -> None:
        if slot.writer is not None:
            slot.writer.write((json.dumps({"stop": unit}) + "\n").encode())

    async def close(self, socket_path: str) -> None:
        """Tell every launcher to exit (so their containers end and the pod can), then stop
        serving; a launcher that connects later finds the CLOSED mark and exits too."""
        with open(socket_path + CLOSED, "w"):
            pass
        for slot in self.slots:
            if slot.writer is not None:
                with contextlib.suppress(ConnectionError):
                    slot.writer.write(b'{"exit": true}\n')
                    await slot.writer.drain()
                    slot.writer.close()
        if self._server is not None:
            self._server.close()
