"""A run's hold on its project: the store's run lock, taken for the whole job and kept beating.

`with RunLock(store, "nightly"):` takes the lock (a StoreError names whoever holds it), beats
its heartbeat from a background thread so a long round never looks stale, and gives it back
on the way out, also on errors. `check()` (once a round) stops a run whose lock was taken
over (`--force`) before it starts more work. The store must be thread-safe (SQLite's is).
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType

from agent.errors import StoreError
from agent.store.protocol import ProjectStore

BEAT_S = 30.0  # heartbeat period; the store takes a lock over after 300 s without one


def default_holder(what: str = "labelagent run") -> str:
    """A readable holder name: what runs, and for whom."""
    return f"{what} by {os.environ.get('USER') or os.environ.get('USERNAME') or 'someone'}"


class RunLock:
    """The run lock of `store` for `holder` (None: no lock, every call a no-op)."""

    def __init__(
        self,
        store: ProjectStore,
        holder: str | None,
        *,
        force: bool = False,
        beat_s: float = BEAT_S,
    ) -> None:
        self.store, self.holder, self.force, self.beat_s = store, holder, force, beat_s
        self._mine = False  # taken by this object (so released by it too)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """Whether a lock is held (or not wanted: holder None) and not taken over."""
        return not self._lost.is_set()

    def __enter__(self) -> RunLock:
        if self.holder is None:
            return self
        self._mine = self.store.acquire_run_lock(self.holder, force=self.force)
        if self._mine:
            self._thread = threading.Thread(target=self._beat, name="run-lock", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._mine or self.holder is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.store.release_run_lock(self.holder)
        self._mine = False

    def check(self) -> None:
        """Beat once now; a StoreError (one line) when another run has taken the lock over."""
        if self.holder is None:
            return
        if self._lost.is_set() or not self.store.heartbeat_run_lock(self.holder):
            self._lost.set()
            raise StoreError(self._taken_over())

    def _beat(self) -> None:
        """The heartbeat thread: beat every `beat_s` until stopped or taken over."""
        assert self.holder is not None
        while not self._stop.wait(self.beat_s):
            try:
                if not self.store.heartbeat_run_lock(self.holder):
                    self._lost.set()
                    return
            except Exception:  # a busy database: try again next beat, the main thread reports
                continue

    def _taken_over(self) -> str:
        """One line: who holds the lock now, since when, and that this run stops."""
        now = self.store.run_lock()
        who = "another run"
        if now is not None:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(now["started_at"])))
            who = f"'{now['holder']}' (pid {now['pid']} on {now['host']}) at {since}"
        return f"the run lock was taken over by {who}; this run stops here (all so far is saved)"
