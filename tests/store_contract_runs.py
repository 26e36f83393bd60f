"""The store contract, part two: one run at a time (the run lock), claims per item for the
LLM, a dead reviewer's leases, and rounds a killed run left open.

`StoreContract` (in `store_contract.py`) inherits these, so every store passes them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.errors import StoreError
from agent.store.protocol import ProjectStore
from agent.types import Annotation, Kind, Source


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped) on this host."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


class RunContract:
    """Run lock, LLM claims, operator release and interrupted rounds, on any store."""

    def project(self, folder: Path, n: int = 6) -> ProjectStore:
        raise NotImplementedError

    def queued(self, folder: Path, n: int = 6, reviews_needed: int = 1) -> ProjectStore:
        raise NotImplementedError

    # ---- the run lock ----------------------------------------------------------------------
    def test_a_second_holder_is_refused_with_one_line_naming_the_first(
        self, tmp_path: Path
    ) -> None:
        store = self.project(tmp_path)
        assert store.run_lock() is None
        assert store.acquire_run_lock("nightly") is True
        assert store.acquire_run_lock("nightly") is False  # already ours: no error
        with pytest.raises(StoreError) as refused:
            store.acquire_run_lock("ad hoc")
        message = str(refused.value)
        assert "\n" not in message
        for part in ("'nightly'", f"pid {os.getpid()}", socket.gethostname()):
            assert part in message
        assert "since 20" in message and "--force" in message
        lock = store.run_lock()
        assert lock is not None and lock["holder"] == "nightly"
        assert lock["started_at"] <= lock["heartbeat"] <= time.time()

    def test_force_takes_over_and_the_old_holder_learns_it(self, tmp_path: Path) -> None:
        store = self.project(tmp_path)
        store.acquire_run_lock("first")
        assert store.heartbeat_run_lock("first") is True
        assert store.acquire_run_lock("second", force=True) is True
        assert store.heartbeat_run_lock("first") is False
        store.release_run_lock("first")  # not theirs any more: nothing happens
        assert (store.run_lock() or {}).get("holder") == "second"
        store.release_run_lock("second")
        assert store.run_lock() is None
        assert store.acquire_run_lock("third") is True

    def test_a_dead_or_silent_holder_is_taken_over(self, tmp_path: Path) -> None:
        store = self.project(tmp_path)
        store.acquire_run_lock("killed", pid=dead_pid())  # its process is gone, on this host
        assert store.acquire_run_lock("rerun") is True
        store.acquire_run_lock("far away", force=True, host="elsewhere.invalid")
        with pytest.raises(StoreError, match="far away"):  # another host: its heartbeat rules
            store.acquire_run_lock("rerun")
        time.sleep(0.01)
        assert store.acquire_run_lock("rerun", stale_after_s=0.001) is True

    # ---- claims per item -------------------------------------------------------------------
    def test_claims_leave_out_items_claimed_by_others_and_items_with_votes(
        self, tmp_path: Path
    ) -> None:
        store = self.project(tmp_path)
        assert store.claim_for_llm([3, 1, 2], "a") == [3, 1, 2]
        assert store.claim_for_llm([2, 3, 4], "b") == [4]
        assert store.claim_for_llm([1, 2, 3, 1], "a") == [1, 2, 3]  # own claims, once each
        vote = Annotation(5, "refund", Source.LLM, Kind.VOTE, actor="m", confidence=0.9)
        store.add_annotations([vote])
        assert store.claim_for_llm([5, 6], "c") == [6]
        assert store.claim_for_llm([], "c") == []

    def test_claims_of_a_dead_old_or_released_holder_are_free_again(
        self, tmp_path: Path
    ) -> None:
        store = self.project(tmp_path)
        assert store.claim_for_llm([1], "killed", pid=dead_pid()) == [1]
        assert store.claim_for_llm([1], "rerun") == [1]
        assert store.claim_for_llm([2], "far", host="elsewhere.invalid") == [2]
        assert store.claim_for_llm([2], "near") == []  # recent, on another host: live
        time.sleep(0.01)
        assert store.claim_for_llm([2], "near", ttl_s=0.001) == [2]
        store.acquire_run_lock("run")
        assert store.claim_for_llm([3, 4], "run") == [3, 4]
        store.release_run_lock("run")  # the run's unanswered claims go with its lock
        assert store.claim_for_llm([3, 4], "library") == [3, 4]

    # ---- a reviewer who comes back -----------------------------------------------------------
    def test_release_operator_frees_every_lease_of_that_operator(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path, n=6)
        assert [e.item_key for e in store.lease("ann", n=3)] == [1, 2, 3]
        assert [e.item_key for e in store.lease("bob", n=1)] == [4]
        assert store.release_operator("ann") == 3
        assert store.release_operator("ann") == 0
        assert [e.item_key for e in store.lease("cy", n=6)] == [1, 2, 3, 5, 6]  # not bob's

    # ---- rounds a killed run left open -------------------------------------------------------
    def test_interrupted_rounds_are_closed_with_a_note(self, tmp_path: Path) -> None:
        store = self.project(tmp_path)
        first = store.start_round()
        store.finish_round(first, {"selected": 3})
        second = store.start_round()
        assert store.close_interrupted_rounds("killed") == [second]
        assert store.close_interrupted_rounds("killed") == []
        rounds = {r["id"]: r for r in store.rounds()}
        assert rounds[first]["stats"] == {"selected": 3}
        assert rounds[second]["finished_at"] is not None
        assert rounds[second]["stats"] == {"interrupted": True, "note": "killed"}
