"""One operator's pace: items per minute, slow-down against their own median, break reminder.

Tired reviewers get slower before they get worse, so the header compares the last few items'
time with the operator's usual time and reminds them to pause after a stretch of work.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Sequence
from statistics import median

SLOW_RATIO = 1.5  # recent median this many times the usual one counts as slowing down


class Pace:
    """Times per item (ms) for one operator; every figure is O(1) or O(window) to read."""

    def __init__(
        self,
        break_after_s: float,
        history_ms: Sequence[int],
        clock: Callable[[], float],
        *,
        window: int = 5,
        min_history: int = 10,
        idle_reset_s: float = 300.0,
        rate_window: int = 20,
    ) -> None:
        self.break_after_s, self.window, self.min_history = break_after_s, window, min_history
        self.idle_reset_s = idle_reset_s
        self._clock = clock
        self._all = sorted(int(ms) for ms in history_ms)  # history + this session, sorted
        self._session: list[int] = []
        now = clock()
        self._stamps: deque[float] = deque([now], maxlen=rate_window + 1)
        self._work_start = self._last = now

    def record(self, duration_ms: int) -> None:
        """Count one decision that took `duration_ms`; a long pause before it counts as a break."""
        now = self._clock()
        if now - self._last >= self.idle_reset_s:
            self._work_start = now
        self._last = now
        self._session.append(duration_ms)
        bisect.insort(self._all, duration_ms)
        self._stamps.append(now)

    def forget_last(self) -> None:
        """Undo of the latest decision: its time no longer counts."""
        if not self._session:
            return
        duration = self._session.pop()
        del self._all[bisect.bisect_left(self._all, duration)]
        if len(self._stamps) > 1:
            self._stamps.pop()

    def per_minute(self) -> float | None:
        """Decisions per minute over the last `rate_window` of them; None before the first."""
        span = self._stamps[-1] - self._stamps[0]
        if len(self._stamps) < 2 or span <= 0:
            return None
        return (len(self._stamps) - 1) * 60.0 / span

    def usual_ms(self) -> float | None:
        """The operator's median time per item, history included."""
        return float(median(self._all)) if self._all else None

    def recent_ms(self) -> float | None:
        """Median time of the last `window` items of this session."""
        recent = self._session[-self.window :]
        return float(median(recent)) if len(recent) == self.window else None

    def slow_ratio(self) -> float | None:
        """Recent over usual time per item; None until there is enough to compare."""
        usual, recent = self.usual_ms(), self.recent_ms()
        if usual is None or recent is None or len(self._all) < self.min_history or usual <= 0:
            return None
        return recent / usual

    def minutes_working(self) -> float:
        """Minutes since the last break (a pause of `idle_reset_s` or more), or since the start."""
        now = self._clock()
        start = now if now - self._last >= self.idle_reset_s else self._work_start
        return (now - start) / 60.0

    def break_due(self) -> bool:
        return self.minutes_working() * 60.0 >= self.break_after_s
