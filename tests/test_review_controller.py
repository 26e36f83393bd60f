"""ReviewController on real on-disk projects: decisions, skip, undo, leases, several operators."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import ProjectConfig
from agent.store.sqlite import Store
from agent.tui.cards import candidates
from agent.tui.controller import ReviewController
from agent.tui.pace import Pace
from agent.types import LabelSet, QueueEntry

LABELS = LabelSet(("card_arrival", "card_linking", "exchange_rate", "lost_card", "refund"))
REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    """A monotonic clock the test moves by hand, so durations are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def suggestion(best: str | None, llm: str | None, top: list[str]) -> dict[str, Any]:
    return {
        "llm": None if llm is None else
        {"label": llm, "confidence": 0.9, "rationale": "mentions it", "method": "logprob"},
        "classifier": [[name, round(0.5 / (i + 1), 3)] for i, name in enumerate(top)],
        "best": best, "p_wrong": 0.3, "detail": f"LLM says {llm}",
    }


def make_project(folder: Path, n: int = 12) -> Path:
    """n items; item k has priority n-k (item 1 first) and suggests LABELS[k % 5]."""
    store = Store.create(folder, LABELS)
    store.add_items((f"id{k}", f"message number {k}", None) for k in range(1, n + 1))
    names = LABELS.names
    store.enqueue([
        QueueEntry(k, "disagree", float(n - k), 1,
                   suggestion(names[k % 5], names[k % 5], [names[(k + 1) % 5], names[k % 5]]))
        for k in range(1, n + 1)
    ])
    store.close()
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def open_controller(
    folder: Path, operator: str = "alice", clock: FakeClock | None = None, prefetch: int = 4,
    **config: Any,
) -> ReviewController:
    # model_copy skips validation: the tests use leases shorter than the 5 s minimum
    cfg = ProjectConfig.model_validate({}).model_copy(update=config)
    assert set(config) <= set(ProjectConfig.model_fields)
    return ReviewController(
        Store.open(folder), cfg, operator, prefetch=prefetch, clock=clock or FakeClock()
    )


def human_rows(store: Store) -> list[dict[str, Any]]:
    return store.annotations(source="human", kind="label")


def test_candidates_order_best_llm_classifier_known_and_unique() -> None:
    sugg = suggestion("refund", "lost_card", ["refund", "not_a_label", "card_arrival"])
    cands = candidates(sugg, LABELS)
    assert [c.label for c in cands] == ["refund", "lost_card", "card_arrival"]
    assert cands[0].suggested and cands[0].probability == pytest.approx(0.5)
    assert cands[1].llm_confidence == pytest.approx(0.9) and cands[1].probability is None
    assert candidates({}, LABELS) == ()


def test_accept_saves_human_label_with_operator_and_time(project: Path) -> None:
    clock = FakeClock()
    ctl = open_controller(project, clock=clock)
    first = ctl.start()
    assert first is not None and first.key == 1  # most valuable first
    clock.tick(2.5)
    decision = ctl.accept()
    assert decision is not None and decision.label == "card_linking"
    ctl.flush()
    [row] = human_rows(ctl.store)
    assert (row["item_key"], row["label"], row["actor"]) == (1, "card_linking", "alice")
    assert row["duration_ms"] == 2500 and row["source"] == "human"
    assert json.loads(row["meta"]) == {"reason": "disagree", "suggested": "card_linking"}
    assert ctl.current is not None and ctl.current.key == 2
    assert ctl.store.queue_counts() == {"done": 1, "pending": 11}


def test_pick_ambiguous_and_note(project: Path) -> None:
    ctl = open_controller(project)
    ctl.start()
    assert ctl.pick(9) is None  # no 9th candidate: nothing saved
    ctl.flush()
    assert not human_rows(ctl.store)
    ctl.set_note("  customer writes in German ")
    picked = ctl.pick(2)  # item 1: best card_linking, then classifier's exchange_rate
    assert picked is not None and picked.label == "exchange_rate"
    flagged = ctl.ambiguous()
    assert flagged is not None and flagged.label is None
    ctl.flush()
    rows = human_rows(ctl.store)
    assert json.loads(rows[0]["meta"])["note"] == "customer writes in German"
    assert rows[1]["label"] is None and json.loads(rows[1]["meta"])["flag"] == "ambiguous"
    with pytest.raises(ValueError, match="not in the project's label set"):
        ctl.decide("no_such_label")


def test_skip_sends_item_to_the_back(project: Path) -> None:
    ctl = open_controller(project, prefetch=2)
    ctl.start()
    skipped = ctl.skip()
    assert skipped is not None and skipped.key == 1
    assert ctl.current is not None and ctl.current.key == 2
    ctl.flush()
    assert not human_rows(ctl.store)
    assert ctl.store.skipped("alice") == [1]  # behind every item alice has not skipped
    assert [e.item_key for e in ctl.store.lease("alice", 12)][-1] == 1
    ctl.close()


def test_undo_several_levels_and_decide_again(project: Path) -> None:
    ctl = open_controller(project)
    ctl.start()
    for _ in range(3):
        ctl.accept()
    assert ctl.current is not None and ctl.current.key == 4
    back = ctl.undo()
    assert back is not None and back.key == 3
    back = ctl.undo()
    assert back is not None and back.key == 2
    ctl.flush()
    assert [r["item_key"] for r in human_rows(ctl.store)] == [1]
    assert ctl.store.queue_counts() == {"done": 1, "pending": 11}
    assert ctl.stats().done == 1
    ctl.pick(2)  # a different answer for item 2; then item 3 and 4 follow in order
    assert ctl.current is not None and ctl.current.key == 3
    ctl.accept()
    assert ctl.current is not None and ctl.current.key == 4
    ctl.flush()
    assert [r["item_key"] for r in human_rows(ctl.store)] == [1, 2, 3]
    while ctl.undo() is not None:
        pass
    ctl.flush()
    assert not human_rows(ctl.store) and not ctl.can_undo


def test_quit_releases_and_resume_continues(project: Path) -> None:
    ctl = open_controller(project)
    ctl.start()
    ctl.accept()
    ctl.accept()
    held = ctl.held_keys()
    ctl.close()
    other = open_controller(project, "bob", prefetch=len(held))
    other.start()
    assert other.held_keys() == held  # released at quit, so bob gets them at once
    other.close()
    again = open_controller(project)
    assert again.start() is not None and again.current is not None and again.current.key == 3


def test_two_operators_never_share_an_item(project: Path) -> None:
    alice, bob = open_controller(project), open_controller(project, "bob")
    alice.start()
    bob.start()
    assert not alice.held_keys() & bob.held_keys()
    seen: dict[str, list[int]] = {"alice": [], "bob": []}
    while alice.current or bob.current:
        for name, ctl in (("alice", alice), ("bob", bob)):
            if ctl.current is not None:
                seen[name].append(ctl.current.key)
                ctl.accept()
                ctl.top_up()
    assert not set(seen["alice"]) & set(seen["bob"])
    assert sorted(seen["alice"] + seen["bob"]) == list(range(1, 13))
    assert seen["alice"] and seen["bob"]


def test_expired_lease_returns_item_and_renewal_keeps_it(project: Path) -> None:
    clock = FakeClock()
    alice = open_controller(project, clock=clock, lease_seconds=0.6, prefetch=1)
    alice.start()
    held = alice.held_keys()
    time.sleep(0.35)
    clock.tick(0.35)
    assert alice.renew_leases() == len(held)
    alice.flush()
    time.sleep(0.35)  # past the first lease's end, within the renewed one
    bob = open_controller(project, "bob", prefetch=4)
    bob.start()
    assert not bob.held_keys() & held
    time.sleep(0.7)  # alice's terminal died: her leases run out and return to the queue
    carol = open_controller(project, "carol", prefetch=12)
    carol.start()
    assert held <= carol.held_keys()


def test_retrain_due_and_fresh_suggestions_after_refresh(project: Path) -> None:
    ctl = open_controller(project, retrain_every=2)
    ctl.start()
    ctl.accept()
    assert not ctl.refresh_due
    ctl.accept()
    assert ctl.refresh_due
    ctl.refresh_started()
    assert not ctl.refresh_due
    ahead = sorted(ctl.held_keys() - {3})
    ctl.store.enqueue([QueueEntry(k, "audit", 100.0 + k, 2, suggestion("refund", None, []))
                       for k in ahead])
    ctl.store.set_meta("estimated_accuracy", {"value": 0.9, "low": 0.85, "high": 0.94})
    ctl.after_refresh()
    ctl.top_up(wait=True)
    assert ctl.current is not None and ctl.current.key == 3  # the shown card stays as it was
    ctl.accept()
    assert ctl.current is not None and ctl.current.entry.reason == "audit"
    assert ctl.current.best == "refund"
    assert ctl.stats().accuracy == {"value": 0.9, "low": 0.85, "high": 0.94}


def test_stats_agreement_and_remaining(project: Path) -> None:
    ctl = open_controller(project)
    ctl.start()
    ctl.accept()
    ctl.pick(2)
    ctl.ambiguous()
    stats = ctl.stats()
    assert (stats.done, stats.remaining) == (3, 9)
    assert stats.agreement == pytest.approx(1 / 3)


def test_history_feeds_the_usual_time(project: Path) -> None:
    clock = FakeClock()
    ctl = open_controller(project, clock=clock)
    ctl.start()
    for _ in range(3):
        clock.tick(4.0)
        ctl.accept()
    ctl.close()
    again = open_controller(project)
    assert again.pace.usual_ms() == pytest.approx(4000.0)


def test_an_operator_starting_again_gives_back_their_dead_sessions_leases(
    project: Path,
) -> None:
    """A killed TUI leaves its leases; the same operator's next start frees them at once,
    instead of keeping them from everyone for the lease's ten minutes."""
    with Store.open(project) as store:
        assert [e.item_key for e in store.lease("alice", n=5)] == [1, 2, 3, 4, 5]
    ctl = open_controller(project, "alice", prefetch=1)  # holds two cards at most
    card = ctl.start()
    assert card is not None and card.key == 1
    ctl.flush()
    with Store.open(project) as store:
        assert {e.item_key for e in store.lease("bob", n=12)} >= {3, 4, 5}
    ctl.close()


def test_pace_slowdown_rate_and_break() -> None:
    clock = FakeClock()
    pace = Pace(600.0, [2000] * 10, clock, window=3, idle_reset_s=120.0)
    assert pace.per_minute() is None and pace.slow_ratio() is None
    for ms in (6000, 6000, 6000):
        clock.tick(ms / 1000)
        pace.record(ms)
    assert pace.per_minute() == pytest.approx(10.0)
    assert pace.slow_ratio() == pytest.approx(3.0)
    pace.forget_last()
    assert pace.slow_ratio() is None  # fewer than `window` recent items
    for _ in range(10):  # ten minutes of steady work, a minute per item
        assert not pace.break_due()
        clock.tick(60)
        pace.record(60_000)
    assert pace.break_due()
    clock.tick(200)  # idle longer than idle_reset_s: that was a break
    assert not pace.break_due()
    pace.record(3000)
    assert pace.minutes_working() == pytest.approx(0.0)


WORKER = """
import sys, json
from pathlib import Path
from agent.config import ProjectConfig
from agent.store.sqlite import Store
from agent.tui.controller import ReviewController
ctl = ReviewController(Store.open(Path(sys.argv[1])), ProjectConfig(), sys.argv[2], prefetch=2)
ctl.start()
keys = []
while ctl.current is not None:
    keys.append(ctl.current.key)
    ctl.accept()
ctl.close()
print(json.dumps(keys))
"""


def test_two_processes_lease_concurrently(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "proj", n=40)
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(folder), name],
                         stdout=subprocess.PIPE, text=True, cwd=REPO)
        for name in ("alice", "bob")
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    alice, bob = (json.loads(out) for out in outputs)
    assert not set(alice) & set(bob)
    assert sorted(alice + bob) == list(range(1, 41))
    with Store.open(folder) as store:
        assert len(human_rows(store)) == 40
        assert store.queue_counts() == {"done": 40}
