"""Time limits for many attempts at once, on one event-loop timer.

`asyncio.timeout` arms a loop timer per use and takes about as much CPU as the rest of the
engine's work for a unit. Attempts mostly share a few limit lengths (`timeoutSeconds` of a step
or of the defaults), and limits of one length set one after another expire in that order. So
each length keeps its limits in a queue, oldest first, and only the earliest deadline of all
holds a timer. Setting a limit or ending one is then a few operations on a deque.

An expired limit cancels the task that set it, as `asyncio.timeout` does. The task tells that
cancellation from any other with `Limit.expired` and `Task.uncancel`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

COMPACT_AT = 64
"""Ended limits kept in one queue before it is rebuilt without them (when they are the most
part): a long attempt at the head of a queue keeps every later one there until then."""
_EARLY = time.get_clock_info("monotonic").resolution
"""A timer may run this much before its time (the loop's clock resolution)."""


@dataclass(eq=False, slots=True)
class Limit:
    seconds: float
    deadline: float
    task: asyncio.Task[Any]
    cancelling: int
    """How many cancellations the task had pending when the limit was set."""
    expired: bool = False
    queued: bool = True


@dataclass(eq=False, slots=True)
class _Queue:
    limits: deque[Limit] = field(default_factory=deque)
    ended: int = 0
    """Limits still in `limits` that ended before their deadline."""


class Deadlines:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[float, _Queue] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self, seconds: float) -> Limit:
        """A limit of `seconds` for the current task, from now."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Limits set on a loop that has gone can never fire: start afresh.
            self._loop, self._queues, self._timer = loop, {}, None
        task = asyncio.current_task()
        assert task is not None
        limit = Limit(seconds, loop.time() + seconds, task, task.cancelling())
        queue = self._queues.get(seconds)
        if queue is None:
            queue = self._queues[seconds] = _Queue()
        queue.limits.append(limit)
        if self._timer is None or limit.deadline < self._timer.when():
            self._arm()
        return limit

    def end(self, limit: Limit) -> None:
        """The attempt is over: its limit no longer applies."""
        if not limit.queued:
            return
        limit.queued = False
        queue = self._queues[limit.seconds]
        queue.ended += 1
        limits = queue.limits
        while limits and not limits[0].queued:
            limits.popleft()
            queue.ended -= 1
        if queue.ended > COMPACT_AT and 2 * queue.ended > len(limits):
            queue.limits = deque(kept for kept in limits if kept.queued)
            queue.ended = 0

    def pending(self) -> int:
        """The limits held, ended ones not yet dropped included (for tests and figures)."""
        return sum(len(queue.limits) for queue in self._queues.values())

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        heads = [queue.limits[0].deadline for queue in self._queues.values() if queue.limits]
        if heads and self._loop is not None:
            self._timer = self._loop.call_at(min(heads), self._expire)

    def _expire(self) -> None:
        self._timer = None
        assert self._loop is not None
        now = self._loop.time() + _EARLY
        for queue in self._queues.values():
            limits = queue.limits
            while limits and (not limits[0].queued or limits[0].deadline <= now):
                limit = limits.popleft()
                if not limit.queued:
                    queue.ended -= 1
                    continue
                limit.queued = False
                limit.expired = True
                limit.task.cancel()
        self._arm()
