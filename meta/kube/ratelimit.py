"""The client-side rate limit on API calls: a token bucket (kopf and the client have none)."""

from __future__ import annotations

import asyncio
import time

from meta.kube import metrics

DEFAULT_QPS = 20.0
DEFAULT_BURST = 30


class RateLimit:
    """A token bucket shared by every call of one process."""

    def __init__(self, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait for a token; the wait (behind other callers, then for the bucket) is counted
        as time throttled."""
        asked = time.monotonic()
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.qps)
                self._stamp = time.monotonic()
                self._tokens = 1.0
            self._tokens -= 1
        metrics.throttled(time.monotonic() - asked)
