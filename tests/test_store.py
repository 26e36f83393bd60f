"""The SQLite project store on real files: schema and migrations, annotations, caches, queue.

The concurrency test runs two real Python processes against one on-disk project.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import agent.store.sqlite as store_module
from agent.errors import InputError, StoreError
from agent.routing.sources import counts_by_source, current_labels
from agent.store.schema import MIGRATIONS, SCHEMA_VERSION
from agent.store.sqlite import DB_FILE, Store
from agent.types import Annotation, Kind, LabelSet, QueueEntry, Source, text_hash

LABELS = LabelSet(("refund", "card_lost", "other"), ("money back", "card gone", ""))
REPO = Path(__file__).resolve().parents[1]


def make_store(folder: Path, n: int = 6) -> Store:
    """A project on disk with n items 'id1'..'idn' (keys 1..n)."""
    store = Store.create(folder, LABELS)
    store.add_items((f"id{k}", f"text number {k}", None) for k in range(1, n + 1))
    return store


def label(key: int, name: str | None, source: Source, actor: str = "x") -> Annotation:
    return Annotation(key, name, source, Kind.LABEL, actor=actor)


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


# ---- opening, schema, migrations -----------------------------------------------------------
def test_create_then_open_keeps_labels_items_and_uses_wal(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        assert store.count_items() == 6
    with Store.open(tmp_path / "p") as store:
        assert store.label_set == LABELS
        assert store.label_set.describe("card_lost") == "card gone"
        assert [i.id for i in store.items()] == [f"id{k}" for k in range(1, 7)]
        assert store._read("PRAGMA journal_mode")[0][0] == "wal"
    assert user_version(tmp_path / "p" / DB_FILE) == SCHEMA_VERSION


def test_create_refuses_an_existing_project_and_open_a_missing_one(tmp_path: Path) -> None:
    make_store(tmp_path / "p").close()
    with pytest.raises(StoreError, match="already exists"):
        Store.create(tmp_path / "p", LABELS)
    with pytest.raises(StoreError, match="not a labelagent project"):
        Store.open(tmp_path / "elsewhere")


def test_memory_store_works_without_a_folder() -> None:
    with Store.memory(LABELS) as store:
        store.add_items([("a", "hello", "refund"), ("b", "world", None)])
        assert store.path is None
        assert store.count_items() == 2
        assert counts_by_source(store) == {"import": 1}


def test_empty_database_at_version_zero_is_migrated(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    sqlite3.connect(folder / DB_FILE).close()  # an empty file: user_version 0, no tables
    with Store.open(folder) as store:
        store.add_items([("a", "hello", None)])
        assert store.count_items() == 1
    assert user_version(folder / DB_FILE) == SCHEMA_VERSION


def test_older_database_gets_the_new_migration_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store(tmp_path / "p").close()
    step = "ALTER TABLE items ADD COLUMN note TEXT NOT NULL DEFAULT 'none'"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, step])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store.open(tmp_path / "p") as store:
        assert store.count_items() == 6
        assert store._read("SELECT DISTINCT note FROM items") == [("none",)]
    assert user_version(tmp_path / "p" / DB_FILE) == SCHEMA_VERSION + 1
    with Store.open(tmp_path / "p") as store:  # already migrated: the step does not run twice
        assert store.count_items() == 6


def test_newer_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    make_store(tmp_path / "p").close()
    conn = sqlite3.connect(tmp_path / "p" / DB_FILE)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        Store.open(tmp_path / "p")
    assert user_version(tmp_path / "p" / DB_FILE) == SCHEMA_VERSION + 1


def test_a_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / DB_FILE).write_bytes(b"this is not a database, just some bytes" * 50)
    with pytest.raises(StoreError, match="not a labelagent database"):
        Store.open(folder)


def test_meta_and_rounds_round_trip(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        store.set_meta("estimated_accuracy", {"value": 0.9, "low": 0.85, "high": 0.93})
        first = store.start_round()
        store.finish_round(first, {"labelled": 12})
        second = store.start_round()
    with Store.open(tmp_path / "p") as store:
        assert store.get_meta("estimated_accuracy") == {"value": 0.9, "low": 0.85, "high": 0.93}
        assert store.get_meta("missing", "dflt") == "dflt"
        rounds = store.rounds()
        assert [r["id"] for r in rounds] == [first, second]
        assert rounds[0]["stats"] == {"labelled": 12} and rounds[0]["finished_at"] is not None
        assert rounds[1]["finished_at"] is None


# ---- items -----------------------------------------------------------------------------------
def test_add_items_skips_known_ids_and_refuses_a_changed_text(tmp_path: Path) -> None:
    with make_store(tmp_path / "p", n=3) as store:
        again = store.add_items([("id1", "text number 1", None), ("new", "fresh text", None)])
        assert (again.added, again.skipped) == (1, 1)
        with pytest.raises(InputError, match="id 'id2' is already in the project"):
            store.add_items([("brand", "new text", None), ("id2", "another text", None)])
        assert store.count_items() == 4  # the whole failed batch rolled back, 'brand' included
        assert store.existing_ids(["id1", "brand", "new"]) == {"id1", "new"}


def test_items_by_key_keep_the_order_asked_and_batches_cover_all(tmp_path: Path) -> None:
    with make_store(tmp_path / "p", n=25) as store:
        assert [i.key for i in store.items([7, 2, 19])] == [7, 2, 19]
        batches = list(store.iter_items(batch=10))
        assert [len(b) for b in batches] == [10, 10, 5]
        assert [i.key for b in batches for i in b] == list(range(1, 26))
        assert store.items([3])[0].text_hash == text_hash("text number 3")


# ---- annotations and current labels ----------------------------------------------------------
def test_human_beats_llm_beats_model_whatever_the_order(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        store.add_annotations([label(1, "refund", Source.HUMAN)])
        store.add_annotations([label(1, "other", Source.LLM), label(1, "other", Source.MODEL)])
        store.add_annotations([label(2, "other", Source.MODEL)])
        store.add_annotations([label(2, "card_lost", Source.LLM)])
        store.add_annotations([label(2, "refund", Source.MODEL)])
        current = current_labels(store)
        assert (current[1].label, current[1].source) == ("refund", "human")
        assert (current[2].label, current[2].source) == ("card_lost", "llm")
        assert 3 not in current
        assert counts_by_source(store) == {"human": 1, "llm": 1}
        assert set(current_labels(store, sources=["model"])) == {1, 2}


def test_newest_wins_within_a_rank_and_votes_never_label(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        store.add_annotations([label(1, "refund", Source.HUMAN, "ann")])
        store.add_annotations([label(1, "other", Source.HUMAN, "bob")])
        store.add_annotations([Annotation(1, "card_lost", Source.HUMAN, Kind.VOTE, actor="z")])
        current = current_labels(store)[1]
        assert (current.label, current.actor) == ("other", "bob")
        assert len(store.annotations(item_key=1)) == 3  # append-only: nothing overwritten


def test_retract_hides_an_annotation_and_the_previous_label_returns(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        [llm] = store.add_annotations([label(1, "other", Source.LLM)])
        [human] = store.add_annotations([label(1, "refund", Source.HUMAN, "ann")])
        assert store.count_annotations(source="human", kind="label") == 1
        store.retract(human, actor="ann")
        assert store.count_annotations(source="human", kind="label") == 0  # retracted: not counted
        assert store.count_annotations(kind="label") == 1
        assert current_labels(store)[1].label == "other"
        assert [a["id"] for a in store.annotations(item_key=1)] == [llm]
        store.retract(llm, actor="ann")
        assert 1 not in current_labels(store)
        with pytest.raises(StoreError, match="no annotation 999"):
            store.retract(999, actor="ann")


def test_annotation_provenance_is_kept(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        note = Annotation(
            2, "refund", Source.LLM, Kind.VOTE, actor="gpt", confidence=0.8,
            rationale="asks for money", prompt_hash="abc123", round=3, duration_ms=40,
            meta={"method": "logprob"},
        )  # fmt: skip
        store.add_annotations([note])
    with Store.open(tmp_path / "p") as store:
        [row] = store.annotations(source="llm", kind="vote")
    expected = {
        "item_key": 2, "label": "refund", "source": "llm", "kind": "vote", "actor": "gpt",
        "confidence": 0.8, "rationale": "asks for money", "prompt_hash": "abc123", "round": 3,
        "duration_ms": 40, "target": None,
    }  # fmt: skip
    assert {k: row[k] for k in expected} == expected
    assert json.loads(row["meta"]) == {"method": "logprob"} and row["created_at"] > 0


def test_an_abstaining_human_label_is_current_but_not_counted(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        store.add_annotations([label(1, "refund", Source.LLM), label(1, None, Source.HUMAN)])
        assert current_labels(store)[1].label is None
        assert counts_by_source(store) == {}


# ---- caches ----------------------------------------------------------------------------------
def test_llm_cache_and_its_totals_survive_reopening(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        assert store.cache_get("k1") is None
        store.cache_put("k1", "m", {"label": "refund"}, 100, 5, 0.002)
        store.cache_put("k2", "m", {"label": "other"}, 50, 7, 0.001)
    with Store.open(tmp_path / "p") as store:
        assert store.cache_get("k1") == {"label": "refund"}
        totals = store.cache_totals()
    assert totals == pytest.approx(
        {"calls": 2, "prompt_tokens": 150, "completion_tokens": 12, "cost_usd": 0.003}
    )


def test_vectors_round_trip_by_model_and_hash(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    with make_store(tmp_path / "p") as store:
        store.put_vectors("mini", ["h1", "h2", "h3"], vectors)
        store.put_vectors("other", ["h1"], vectors[2:] * 2)
    with Store.open(tmp_path / "p") as store:
        found = store.get_vectors("mini", ["h3", "h1", "missing"])
        assert set(found) == {"h1", "h3"}
        np.testing.assert_array_equal(found["h3"], vectors[2])
        np.testing.assert_array_equal(found["h1"], vectors[0])
        np.testing.assert_array_equal(store.get_vectors("other", ["h1"])["h1"], vectors[2] * 2)
        assert store.get_vectors("mini", []) == {}


# ---- review queue ----------------------------------------------------------------------------
def queued(folder: Path, n: int = 6, reviews_needed: int = 1) -> Store:
    """n items, all queued; item k has priority n-k, so item 1 comes first."""
    store = make_store(folder, n)
    entries = [
        QueueEntry(k, "disagree", float(n - k), 1, {"best": "refund"}, reviews_needed)
        for k in range(1, n + 1)
    ]
    assert store.enqueue(entries) == n
    return store


def review(store: Store, key: int, operator: str) -> None:
    """What an operator's decision writes: a human label, then the queue entry is completed."""
    store.add_annotations([label(key, "refund", Source.HUMAN, operator)])
    store.complete(key, operator)


def test_lease_gives_most_valuable_first_and_never_the_same_item_twice(tmp_path: Path) -> None:
    with queued(tmp_path / "p") as store:
        ann = store.lease("ann", n=2)
        bob = store.lease("bob", n=3)
        assert [e.item_key for e in ann] == [1, 2]
        assert [e.item_key for e in bob] == [3, 4, 5]
        assert ann[0].suggestion == {"best": "refund"} and ann[0].reason == "disagree"
        assert [e.item_key for e in store.lease("ann", n=2)] == [1, 2]  # re-lease own items
        assert store.queue_size() == 6  # leased items are still pending until reviewed


def test_complete_release_demote_and_reopen(tmp_path: Path) -> None:
    with queued(tmp_path / "p") as store:
        first, second = store.lease("ann", n=2)
        review(store, first.item_key, "ann")
        assert store.queue_counts() == {"done": 1, "pending": 5}
        store.release(second.item_key, "bob", demote=True)  # not bob's lease: nothing happens
        assert store.lease("bob", n=1)[0].item_key == 3
        store.release(second.item_key, "ann", demote=True)  # skip: behind everything else
        assert [e.item_key for e in store.pending()] == [3, 4, 5, 6, 2]
        assert store.lease("cy", n=5)[-1].item_key == 2
        store.reopen(first.item_key)
        assert store.queue_counts() == {"pending": 6}
        assert sorted(store.queued_keys()) == [1, 2, 3, 4, 5, 6]


def test_reopened_item_can_be_leased_again_by_the_operator_who_undid_it(tmp_path: Path) -> None:
    with queued(tmp_path / "p", n=2) as store:
        [entry] = store.lease("ann", n=1)
        [undone] = store.add_annotations([label(entry.item_key, "refund", Source.HUMAN, "ann")])
        store.complete(entry.item_key, "ann")
        store.retract(undone, "ann")  # undo
        store.reopen(entry.item_key)
        assert [e.item_key for e in store.lease("ann", n=2)] == [1, 2]


def test_an_expired_lease_returns_the_item_to_the_queue(tmp_path: Path) -> None:
    with queued(tmp_path / "p", n=2) as store:
        assert [e.item_key for e in store.lease("ann", n=1, lease_seconds=0.05)] == [1]
        assert [e.item_key for e in store.lease("bob", n=2)] == [2]
        time.sleep(0.1)
        assert [e.item_key for e in store.lease("bob", n=2)] == [1, 2]
        store.renew(1, "ann")  # ann's renewal comes too late: bob owns it now
        assert store.lease("ann", n=2) == []


def test_renewal_keeps_a_short_lease_alive(tmp_path: Path) -> None:
    with queued(tmp_path / "p", n=1) as store:
        store.lease("ann", n=1, lease_seconds=0.05)
        store.renew(1, "ann", lease_seconds=600)
        time.sleep(0.1)
        assert store.lease("bob", n=1) == []


def test_enqueue_refreshes_pending_items_but_leaves_reviewed_ones_done(tmp_path: Path) -> None:
    with queued(tmp_path / "p", n=2) as store:
        review(store, 1, "ann")
        touched = store.enqueue([QueueEntry(1, "audit", 99.0), QueueEntry(2, "audit", 99.0)])
        assert touched == 1
        assert [(e.item_key, e.reason, e.priority) for e in store.pending()] == [(2, "audit", 99.0)]


def test_overlap_items_go_to_two_different_operators(tmp_path: Path) -> None:
    with queued(tmp_path / "p", n=1, reviews_needed=2) as store:
        [entry] = store.lease("ann", n=1)
        assert entry.reviews_needed == 2
        assert store.lease("bob", n=1) == []  # ann holds it
        review(store, 1, "ann")
        assert store.queue_counts() == {"pending": 1}
        assert store.lease("ann", n=1) == []  # ann has reviewed it already
        assert [e.item_key for e in store.lease("bob", n=1)] == [1]
        review(store, 1, "bob")
        assert store.queue_counts() == {"done": 1}
        assert store.lease("cy", n=1) == []
        humans = store.annotations(source="human", item_key=1)
        assert sorted(a["actor"] for a in humans) == ["ann", "bob"]


# ---- two real processes ----------------------------------------------------------------------
# The worker skips the package __init__ (it pulls in sklearn and scipy, seconds of start-up on
# busy cores): it needs only the store, which is imported and run unchanged.
WORKER = """
import json, sys, time, types
from pathlib import Path
sys.modules["agent"] = types.ModuleType("agent")
sys.modules["agent"].__path__ = [str(Path.cwd() / "agent")]
from agent.store.sqlite import Store
from agent.types import Annotation, Kind, Source

folder, name = Path(sys.argv[1]), sys.argv[2]
leased = []
with Store.open(folder) as store:
    (folder / f"{name}.ready").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    while entries := store.lease(name, n=1, lease_seconds=600):
        for entry in entries:
            leased.append(entry.item_key)
            votes = [Annotation(k, "other", Source.MODEL, Kind.VOTE, actor=name) for k in (1, 2)]
            store.add_annotations(votes)
            store.add_annotations([Annotation(entry.item_key, "refund", Source.HUMAN, actor=name)])
            store.complete(entry.item_key, name)
            time.sleep(0.003)  # think time: SQLite's busy wait is not fair to a waiting writer
print(json.dumps(leased))
"""


def test_two_processes_lease_and_write_at_once_losing_nothing(tmp_path: Path) -> None:
    n = 40
    folder = tmp_path / "p"
    queued(folder, n=n).close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("ann", "bob")
    ]
    deadline = time.monotonic() + 60
    while not all((folder / f"{w}.ready").exists() for w in ("ann", "bob")):
        assert all(p.poll() is None for p in workers), [p.communicate() for p in workers]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (folder / "go").touch()
    outputs = [p.communicate(timeout=60) for p in workers]
    assert [p.returncode for p in workers] == [0, 0], outputs
    ann, bob = (json.loads(out) for out, _ in outputs)
    assert ann and bob, "both processes must have leased some items"
    assert not set(ann) & set(bob), "an item was leased by both processes"
    assert sorted(ann + bob) == list(range(1, n + 1))
    with Store.open(folder) as store:
        assert store.queue_counts() == {"done": n}
        assert len(store.annotations(source="human", kind="label")) == n
        assert len(store.annotations(source="model", kind="vote")) == 2 * n
        assert counts_by_source(store) == {"human": n}
