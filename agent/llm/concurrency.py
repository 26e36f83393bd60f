"""How many calls may be in flight at once: a fixed cap, or one that fits the server (AIMD).

A self-hosted server (llama.cpp, Ollama, vLLM on a small machine) often answers one call at a
time; sending it 16 only queues them until they time out. The adaptive limit starts at one call,
adds one while latency stays within `tolerance` times the best latency seen, steps back once
calls only queue, and halves on a timeout, a 429 or a 503 (additive increase, multiplicative
decrease). Latency per call is what
it measures, so a server with parallel slots earns a high limit and a serial one stays low.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ConcurrencyLimit:
    """A cap on calls in flight; `adaptive` moves it between 1 and `ceiling` by latency."""

    def __init__(self, ceiling: int, *, adaptive: bool = False, tolerance: float = 1.5) -> None:
        self.ceiling = max(1, ceiling)
        self.adaptive = adaptive
        self.tolerance = tolerance
        self.limit = 1 if adaptive else self.ceiling
        self.in_flight = 0
        self.best_latency_s: float | None = None
        self.last_latency_s: float | None = None
        self.smooth_latency_s: float | None = None
        self.peak = self.limit
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        """One condition per running event loop (a backend outlives `asyncio.run` calls)."""
        loop = asyncio.get_running_loop()
        if self._cond is None or self._loop is not loop:
            self._loop, self._cond, self.in_flight = loop, asyncio.Condition(), 0
        return self._cond

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `limit` places for the duration of a call."""
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        try:
            yield
        finally:
            async with cond:
                self.in_flight -= 1
                cond.notify_all()

    def succeeded(self, latency_s: float, busy: int) -> None:
        """A call answered in `latency_s` while `busy` calls were in flight. The limit rises by
        one while the smoothed latency stays within `tolerance` x the best seen (all places
        taken), and falls by one once it passes 2.5 x the best (calls only queue there)."""
        self.last_latency_s = latency_s
        best = latency_s if self.best_latency_s is None else min(self.best_latency_s, latency_s)
        self.best_latency_s = best
        smooth = self.smooth_latency_s
        self.smooth_latency_s = latency_s if smooth is None else 0.7 * smooth + 0.3 * latency_s
        if not self.adaptive:
            return
        if self.smooth_latency_s > 2.5 * best and self.limit > 1:
            self.limit -= 1
        elif (
            busy >= self.limit
            and self.limit < self.ceiling
            and self.smooth_latency_s <= self.tolerance * best
        ):
            self.limit += 1
            self.peak = max(self.peak, self.limit)

    def overloaded(self) -> None:
        """A timeout, 429 or 503: halve the limit (at least one call stays allowed)."""
        if self.adaptive:
            self.limit = max(1, self.limit // 2)

