"""The operators' Lease: one holder at a time, a standby that takes over only once the holder
stops renewing (or releases it), and a holder that cannot renew gives up before anyone else
may take it."""

from __future__ import annotations

import asyncio
from typing import Any

from meta.kube.api import ApiFailed
from meta.kube.lease import Leadership, LeaseSettings
from tests.kube.unit.fakes import FakeApi


def settings(identity: str) -> LeaseSettings:
    """Fast: a duration of 0.6 s, renewed every 0.05 s, given up after 0.4 s without."""
    return LeaseSettings(
        namespace="ops", identity=identity, duration=0.6, renew_deadline=0.4, retry=0.05
    )


def holder(api: FakeApi) -> Any:
    return api.leases[("ops", "meta-orchestrator-operator")]["spec"]["holderIdentity"]


async def until(condition: Any, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


def test_one_replica_holds_the_lease_and_the_other_stands_by() -> None:
    async def go() -> None:
        api = FakeApi()
        first, second = Leadership(api, settings("a")), Leadership(api, settings("b"))
        runs = [asyncio.create_task(first.run())]
        await until(first.acquired.is_set)
        runs.append(asyncio.create_task(second.run()))
        await asyncio.sleep(1.5)  # more than the duration: the holder keeps renewing
        assert (first.acquired.is_set(), second.acquired.is_set()) == (True, False)
        assert holder(api) == "a"
        for run in runs:
            run.cancel()

    asyncio.run(go())


def test_a_standby_takes_over_once_the_holder_stops_renewing() -> None:
    async def go() -> None:
        api = FakeApi()
        first, second = Leadership(api, settings("a")), Leadership(api, settings("b"))
        killed = asyncio.create_task(first.run())
        await until(first.acquired.is_set)
        standby = asyncio.create_task(second.run())
        await asyncio.sleep(0.2)
        killed.cancel()  # killed: no release, the Lease is left to expire
        stopped_at = asyncio.get_running_loop().time()
        await until(second.acquired.is_set)
        waited = asyncio.get_running_loop().time() - stopped_at
        assert waited >= 0.3, "not before the holder's last renewal is a duration old"
        spec = api.leases[("ops", "meta-orchestrator-operator")]["spec"]
        assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
        standby.cancel()

    asyncio.run(go())


def test_a_released_lease_is_taken_at_once() -> None:
    async def go() -> None:
        api = FakeApi()
        first = Leadership(api, LeaseSettings(namespace="ops", identity="a", duration=60))
        second = Leadership(api, LeaseSettings(namespace="ops", identity="b", retry=0.05))
        run = asyncio.create_task(first.run())
        await until(first.acquired.is_set)
        standby = asyncio.create_task(second.run())
        await asyncio.sleep(0.2)
        assert not second.acquired.is_set()
        run.cancel()
        await first.release()
        await until(second.acquired.is_set, seconds=2)
        assert holder(api) == "b"
        standby.cancel()

    asyncio.run(go())


def test_a_holder_that_cannot_renew_gives_up_before_the_lease_expires() -> None:
    async def go() -> None:
        api = FakeApi()
        first = Leadership(api, settings("a"))
        run = asyncio.create_task(first.run())
        await until(first.acquired.is_set)

        async def refused(namespace: str, body: Any) -> dict[str, Any]:
            raise ApiFailed("replace", "lease", 503, "unavailable")

        api.replace_lease = refused  # type: ignore[method-assign]
        await until(first.lost.is_set, seconds=2)
        assert not first.acquired.is_set()
        await run  # it returns once lost

    asyncio.run(go())
