"""The client-side rate limit every API call of the operator and the quarterback goes through."""

from __future__ import annotations

import asyncio
import time

import pytest

from meta.kube.ratelimit import DEFAULT_BURST, DEFAULT_QPS, RateLimit


def test_the_defaults_are_twenty_a_second_and_a_burst_of_thirty() -> None:
    assert (DEFAULT_QPS, DEFAULT_BURST) == (20.0, 30)


def test_a_burst_passes_at_once_and_what_follows_waits_for_tokens() -> None:
    async def take(limit: RateLimit, n: int) -> float:
        began = time.monotonic()
        for _ in range(n):
            await limit.take()
        return time.monotonic() - began

    limit = RateLimit(qps=50, burst=10)
    burst = asyncio.run(take(limit, 10))
    limit = RateLimit(qps=50, burst=10)
    beyond = asyncio.run(take(limit, 20))
    # Ten calls beyond the burst need ten tokens at 50 a second: at least 0.2 s, whatever the
    # machine; the burst itself waits for none.
    assert beyond >= 10 / 50 * 0.95
    assert burst < beyond


def test_a_limit_that_lets_nothing_through_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimit(qps=0)
    with pytest.raises(ValueError):
        RateLimit(burst=0)
