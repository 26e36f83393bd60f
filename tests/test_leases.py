"""Leases that hold: a review of an item someone else holds is refused, and a decision is on
disk by the time the reviewer sees the next item (or the header says a write is pending).

Real SQLite projects on disk; the review app driven by Textual's Pilot; the kill test runs a
real review process, presses a key in it and kills it with SIGKILL at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.config import ProjectConfig
from agent.errors import LeaseError
from agent.loop.record import HumanLabel, record_human_labels
from agent.store.sqlite import Store
from agent.tui.app import ReviewApp
from agent.tui.controller import ReviewController
from agent.tui.widgets import flags_text
from agent.types import LabelSet, QueueEntry

REPO = Path(__file__).resolve().parents[1]
LABELS = LabelSet(("refund", "card_lost", "other"))


def make_project(folder: Path, n: int = 5) -> Path:
    """n queued items, item k suggesting LABELS[k % 3], most valuable first."""
    with Store.create(folder, LABELS) as store:
        store.add_items((f"i{k}", f"message number {k} about my card", None) for k in range(n))
        store.enqueue([QueueEntry(it.key, "disagree", float(n - k), 1,
                                  {"best": LABELS.names[k % 3]})
                       for k, it in enumerate(store.items())])  # fmt: skip
    return folder


def humans(folder: Path) -> list[tuple[int, str | None, str]]:
    """Human labels as a fresh connection (another process) sees them."""
    with Store.open(folder) as store:
        return [(r["item_key"], r["label"], r["actor"])
                for r in store.annotations(source="human", kind="label")]  # fmt: skip


def test_complete_refuses_an_item_leased_to_someone_else(tmp_path: Path) -> None:
    with Store.open(make_project(tmp_path / "p")) as store:
        [entry] = store.lease("alice", 1)
        with pytest.raises(LeaseError, match=r"item \d+ is leased to alice for \d+ s more"):
            store.complete(entry.item_key, "bob")
        assert store.queue_counts() == {"pending": 5}  # nothing written
        with pytest.raises(LeaseError):  # the one path every front door takes, too
            record_human_labels(store, [HumanLabel(entry.item_key, "refund")], "bob")
        assert store.count_annotations(source="human") == 0
        store.complete(entry.item_key, "alice")  # the holder may
        assert store.queue_counts() == {"pending": 4, "done": 1}


def test_an_expired_or_missing_lease_lets_anyone_complete(tmp_path: Path) -> None:
    with Store.open(make_project(tmp_path / "p")) as store:
        first, second = store.lease("alice", 2, lease_seconds=-1)  # already run out
        store.complete(first.item_key, "bob")
        record_human_labels(store, [HumanLabel(second.item_key, "other")], "bob")
        [free] = [e for e in store.pending() if e.item_key not in (first.item_key,
                                                                     second.item_key)][:1]
        store.complete(free.item_key, "carol")  # nobody holds it
        assert store.queue_counts() == {"pending": 2, "done": 3}


@pytest.mark.asyncio
async def test_a_decision_is_on_disk_when_the_next_item_shows(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "p")
    app = ReviewApp(Store.open(folder), ProjectConfig(), "alice")
    async with app.run_test() as pilot:
        first = app.controller.current
        assert first is not None
        await pilot.press("enter")
        assert app.controller.current is not None and app.controller.current.key != first.key
        assert humans(folder) == [(first.key, first.best, "alice")]  # before any flush
        assert app.controller.stats().saving == 0


def test_a_slow_write_shows_as_saving_until_it_lands(tmp_path: Path) -> None:
    """Another process holds the database's write lock: the keypress waits `save_wait`, shows
    the next card, and the header says "saving 1…" until the write lands."""
    folder = make_project(tmp_path / "p")
    controller = ReviewController(Store.open(folder), ProjectConfig(), "alice", save_wait=0.2)
    first = controller.start()
    assert first is not None
    controller.flush()
    blocker = Store.open(folder)
    hold = blocker._tx()  # a writer elsewhere: BEGIN IMMEDIATE held open
    hold.__enter__()
    try:
        controller.accept()
        assert controller.current is not None and controller.current.key != first.key
        stats = controller.stats()
        assert stats.saving == 1 and "saving 1…" in flags_text(stats, False).plain
    finally:
        hold.__exit__(None, None, None)
        blocker.close()
    controller.flush()
    assert controller.stats().saving == 0
    assert humans(folder) == [(first.key, first.best, "alice")]
    controller.close()


def test_a_review_of_an_item_taken_over_is_refused_and_said(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "p")
    controller = ReviewController(Store.open(folder), ProjectConfig(), "alice")
    card = controller.start()
    assert card is not None
    controller.flush()
    with Store.open(folder) as other:  # alice's lease ran out; bob took the item
        other.release(card.key, "alice")
        assert card.key in {e.item_key for e in other.lease("bob", 5)}
    controller.accept()
    [said] = controller.refusals()
    assert f"item {card.key} is leased to bob" in said
    assert humans(folder) == []
    assert controller.stats().done == 0 and not controller.can_undo
    controller.close()


REVIEWER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from agent.config import ProjectConfig
    from agent.store.sqlite import Store
    from agent.tui.app import ReviewApp

    async def main() -> None:
        app = ReviewApp(Store.open(Path(sys.argv[1])), ProjectConfig(), "alice")
        async with app.run_test() as pilot:
            first = app.controller.current
            await pilot.press(sys.argv[2])
            print(f"pressed {first.key} {app.controller.current.key}", flush=True)
            time.sleep(60)  # killed here, mid-session: no quit, no flush, no close

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("key", ["enter", "1", "x"])
def test_killing_the_reviewer_right_after_a_keypress_keeps_the_decision(
    tmp_path: Path, key: str
) -> None:
    folder = make_project(tmp_path / "p")
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", REVIEWER, str(folder), key], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = _read_line(proc, timeout=120)
        os.kill(proc.pid, signal.SIGKILL)  # the moment the next item is on screen
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    _, decided, shown = line.split()
    assert int(shown) != int(decided)
    [(item, label, actor)] = humans(folder)
    assert (item, actor) == (int(decided), "alice")
    assert (label is None) == (key == "x")
    with Store.open(folder) as store:  # the queue side of the same transaction
        assert store.queue_counts() == {"pending": 4, "done": 1}


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's "pressed ..." line, or a failure showing its stderr."""
    found: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: found.update(line=proc.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    line = found.get("line", "")
    if not line.startswith("pressed"):
        proc.kill()
        raise AssertionError(f"reviewer said {line!r}; stderr: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
    return line
