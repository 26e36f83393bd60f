"""Ordered background store writes, so a keypress never waits for a commit to reach the disk.

One thread runs the writes in the order they were handed over (a lease never overtakes the
decision made before it). `flush` waits for all of them; a failed write is raised again on the
caller's thread at its next call, so no error passes silently.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class StoreWriter:
    """A single-thread queue of store calls; the caller keeps going while they commit."""

    def __init__(self, name: str = "review-writer") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[Future[Any]] = deque()
        self.closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue `fn(*args)` behind every earlier write; raise an earlier write's failure."""
        self.check()
        future = self._pool.submit(fn, *args)
        self._pending.append(future)
        return future

    def check(self) -> None:
        """Raise the failure of a finished write, if any (in order, on the calling thread)."""
        while self._pending and self._pending[0].done():
            error = self._pending.popleft().exception()
            if error is not None:
                raise error

    def flush(self) -> None:
        """Wait until every queued write has committed; raise the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Flush, then stop the thread. Safe to call twice."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            self._pool.shutdown(wait=True)
