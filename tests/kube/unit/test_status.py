"""The status writer: progress coalesced, and spaced by the resource's size."""

from __future__ import annotations

import asyncio
import time

from meta.engine.records import UnitRecord
from meta.kube.controller.status import PACE_BYTES, UPDATE_SECONDS, StatusReporter
from meta.kube.types import FlowOwner
from tests.kube.unit.fakes import FakeApi

OWNER = FlowOwner("ns", "flow", "uid-1")


def started(n: int) -> UnitRecord:
    return UnitRecord(f"walk/u-{n}", f"u-{n}", "walk", "macro", "running", 1, time.time())


async def writes_while_units_start(resource_bytes: int, seconds: float) -> int:
    """Status writes while a unit starts every 50 ms for `seconds`."""
    api = FakeApi()
    reporter = StatusReporter(api, OWNER, 1, resource_bytes=resource_bytes)
    n = 0
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        reporter.unit_started(started(n))
        n += 1
        await asyncio.sleep(0.05)
    await reporter.close()
    assert api.status["active"] >= 1
    return len(api.statuses)


def test_a_small_resource_gets_a_progress_write_each_second() -> None:
    reporter = StatusReporter(FakeApi(), OWNER, 1, resource_bytes=2_000)
    assert reporter.interval == UPDATE_SECONDS
    # A write at once, and one a second after it (a busy machine may hold it back a little).
    assert asyncio.run(writes_while_units_start(2_000, 2.5)) >= 2


def test_a_big_resource_gets_fewer_writes_as_its_size_grows() -> None:
    one_mib = StatusReporter(FakeApi(), OWNER, 1, resource_bytes=2**20)
    assert one_mib.interval == 2**20 / PACE_BYTES == 32.0
    # 4 s between writes: the first change is written at once, the next ones wait.
    assert asyncio.run(writes_while_units_start(4 * PACE_BYTES, 2.5)) == 1


def test_the_final_write_is_not_held_back() -> None:
    async def final() -> list[str]:
        api = FakeApi()
        reporter = StatusReporter(api, OWNER, 1, resource_bytes=2**20)
        reporter.unit_started(started(0))
        await asyncio.sleep(0.1)
        await reporter.write(phase="Succeeded")
        await reporter.close()
        return [status.get("phase", "") for status in api.statuses]

    assert asyncio.run(final()) == ["", "Succeeded"]
