"""Turns under `spec.parallelism`: never more than N held, finally units served first, and a
turn never lost to a waiter that was cancelled."""

from __future__ import annotations

import asyncio

from meta.engine.turns import Turns


async def _hold(turns: Turns, name: str, urgent: bool, order: list[str], go: asyncio.Event) -> None:
    async with turns.turn(urgent):
        order.append(name)
        await go.wait()


def test_an_urgent_waiter_goes_before_the_ordinary_ones_that_came_first() -> None:
    async def scenario() -> list[str]:
        turns, order, go = Turns(1), [], asyncio.Event()
        first = asyncio.ensure_future(_hold(turns, "first", False, order, go))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(_hold(turns, f"o{i}", False, order, go)) for i in (1, 2)]
        await asyncio.sleep(0)
        urgent = asyncio.ensure_future(_hold(turns, "finally", True, order, go))
        await asyncio.sleep(0)
        assert order == ["first"], "one turn: the others wait"
        go.set()
        await asyncio.gather(first, *waiting, urgent)
        return order

    assert asyncio.run(scenario()) == ["first", "finally", "o1", "o2"]


def test_a_waiter_cancelled_after_it_was_handed_a_turn_passes_it_on() -> None:
    async def scenario() -> list[str]:
        turns, order, go = Turns(1), [], asyncio.Event()
        go.set()
        await turns._take(False)
        doomed = asyncio.ensure_future(_hold(turns, "doomed", False, order, go))
        late = asyncio.ensure_future(_hold(turns, "late", False, order, go))
        await asyncio.sleep(0)
        turns._give_back()  # handed to `doomed`, cancelled before it runs
        doomed.cancel()
        await asyncio.wait_for(late, 1)
        assert doomed.cancelled()
        return order

    assert asyncio.run(scenario()) == ["late"]


def test_no_more_than_n_turns_are_held_and_every_waiter_gets_one() -> None:
    async def scenario() -> int:
        turns, most, live = Turns(3), 0, 0

        async def unit(i: int) -> None:
            nonlocal most, live
            async with turns.turn(i % 4 == 0):
                live += 1
                most = max(most, live)
                await asyncio.sleep(0.001 * (i % 3))
                live -= 1

        tasks = [asyncio.ensure_future(unit(i)) for i in range(40)]
        await asyncio.sleep(0.002)
        for task in tasks[5:40:7]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with asyncio.timeout(1):  # every turn came back: three can be taken at once
            for _ in range(3):
                await turns._take(False)
        return most

    assert asyncio.run(scenario()) == 3
