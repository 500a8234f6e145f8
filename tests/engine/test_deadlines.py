"""Time limits on one loop timer: they expire in deadline order, cancel only their own task, and
what ended is dropped, so the limits held stay bounded by the attempts still running."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from meta.engine.deadlines import COMPACT_AT, Deadlines, Limit

LONG = 3600.0


async def _held(
    deadlines: Deadlines, seconds: float, hold: float, log: list[str], name: str
) -> Limit:
    limit = deadlines.start(seconds)
    try:
        await asyncio.sleep(hold)
        log.append(f"{name} ended")
    except asyncio.CancelledError:
        assert limit.expired and limit.task.uncancel() <= limit.cancelling
        log.append(f"{name} expired")
    finally:
        deadlines.end(limit)
    return limit


def test_limits_expire_in_deadline_order_whatever_their_length() -> None:
    async def main() -> list[str]:
        deadlines, log = Deadlines(), []
        tasks = [
            asyncio.create_task(_held(deadlines, 0.6, LONG, log, "long")),
            asyncio.create_task(_held(deadlines, 0.2, LONG, log, "short")),
            asyncio.create_task(_held(deadlines, 0.2, 0.0, log, "quick")),
        ]
        await asyncio.gather(*tasks)
        assert deadlines.pending() == 0
        return log

    assert asyncio.run(main()) == ["quick ended", "short expired", "long expired"]


def test_a_limit_ended_in_time_cancels_nothing_and_an_outside_cancel_is_not_a_timeout() -> None:
    async def main() -> None:
        deadlines, log = Deadlines(), []
        ended = await _held(deadlines, 0.05, 0.0, log, "a")
        await asyncio.sleep(0.1)
        assert not ended.expired and log == ["a ended"]

        limit_of: list[Limit] = []

        async def waiting() -> None:
            limit_of.append(deadlines.start(LONG))
            try:
                await asyncio.sleep(LONG)
            finally:
                deadlines.end(limit_of[0])

        task = asyncio.create_task(waiting())
        await asyncio.sleep(0)
        task.cancel()
        cancelled = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(cancelled[0], asyncio.CancelledError)
        assert not limit_of[0].expired
        assert deadlines.pending() == 0

    asyncio.run(main())


def test_a_long_attempt_at_the_head_does_not_keep_every_later_limit() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        head = deadlines.start(LONG)
        for _ in range(10 * COMPACT_AT):
            deadlines.end(deadlines.start(LONG))
            assert deadlines.pending() <= 2 * COMPACT_AT + 1
        deadlines.end(head)
        assert deadlines.pending() == 0

    asyncio.run(main())


# (length index, True to start a limit / False to end the oldest live one of that length)
OPERATIONS = st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=400)


@settings(max_examples=60, deadline=None)
@given(OPERATIONS)
def test_the_limits_held_are_bounded_by_those_live(operations: list[tuple[int, bool]]) -> None:
    async def main() -> None:
        deadlines = Deadlines()
        live: dict[int, list[Limit]] = {0: [], 1: [], 2: []}
        for length, starting in operations:
            if starting:
                live[length].append(deadlines.start(LONG + length))
            elif live[length]:
                deadlines.end(live[length].pop(len(live[length]) // 2))
            alive = sum(len(limits) for limits in live.values())
            assert deadlines.pending() <= 2 * alive + 3 * COMPACT_AT
        for limits in live.values():
            for limit in limits:
                deadlines.end(limit)
        assert deadlines.pending() == 0
        assert not any(limit.expired for limits in live.values() for limit in limits)

    asyncio.run(main())
