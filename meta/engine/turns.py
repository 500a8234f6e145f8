"""Turns to run under `spec.parallelism`: at most N units of a run at once, the units of
`finally` blocks served before the others.

A section that fails under `onFailure: stop` ends only once its `finally` units have run; were
they to queue behind the units already waiting, those would start, one after another, after
the failure that should have stopped them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class Turns:
    def __init__(self, count: int) -> None:
        self._free = count
        """Turns no one holds; while any is free, no one waits."""
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def turn(self, urgent: bool) -> AsyncIterator[None]:
        """Hold a turn for the block; an `urgent` one (a finally unit's) goes before every
        ordinary one waiting."""
        await self._take(urgent)
        try:
            yield
        finally:
            self._give_back()

    async def _take(self, urgent: bool) -> None:
        if self._free:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._ordinary).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back()  # handed a turn it will not use
            raise

    def _give_back(self) -> None:
        """Hand the turn to the first live waiter, else free it (a cancelled waiter is done:
        passed over)."""
        for queue in (self._urgent, self._ordinary):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1
