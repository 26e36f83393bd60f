"""The contract every `ProjectStore` passes: items, label set, meta, annotations, latest votes,
human decisions, the review queue with leases, caches and rounds.

Subclass `StoreContract` in a `test_*.py` module with a `make_store` hook (and `reopen_store`
where the store lives on after closing) and pytest runs every test below for that store;
`tests/test_store.py` does so for SQLite on a file and in memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from store_contract_runs import RunContract

from agent.errors import InputError, StoreError
from agent.routing.sources import counts_by_source, current_labels
from agent.store.protocol import ProjectStore
from agent.types import Annotation, ImportResult, Kind, LabelSet, QueueEntry, Source, text_hash

LABELS = LabelSet(("refund", "card_lost", "other"), ("money back", "card gone", ""))


def label(key: int, name: str | None, source: Source, actor: str = "x") -> Annotation:
    return Annotation(key, name, source, Kind.LABEL, actor=actor)


def vote(key: int, name: str | None, source: Source, confidence: float = 0.5) -> Annotation:
    return Annotation(key, name, source, Kind.VOTE, actor="v", confidence=confidence)


def suggested(store: ProjectStore) -> dict[int, str]:
    """Item key -> the best guess of its pending queue entry, where it has one."""
    views = store.queue_views().values()
    return {v.item_key: v.suggestion["best"] for v in views
            if v.state == "pending" and v.suggestion.get("best")}


def review(store: ProjectStore, key: int, operator: str) -> None:
    """What an operator's decision writes: a human label, then the queue entry is completed."""
    store.add_annotations([label(key, "refund", Source.HUMAN, operator)])
    store.complete(key, operator)


class StoreContract(RunContract):
    """Tests any ProjectStore must pass (with the run lock, claims and interrupted rounds of
    `RunContract`); subclasses say how to make (and reopen) one."""

    def make_store(self, folder: Path, label_set: LabelSet) -> ProjectStore:
        """A new, empty project with `label_set` (in `folder` where the store uses files)."""
        raise NotImplementedError

    def reopen_store(self, store: ProjectStore, folder: Path) -> ProjectStore:
        """The same project seen afresh (closing `store` where a new connection can see what
        it wrote); a store that lives only as long as its connection returns itself."""
        return store

    @pytest.fixture(autouse=True)
    def _close_stores(self) -> Iterator[None]:
        self._stores: list[ProjectStore] = []
        yield
        for store in self._stores:
            store.close()

    def project(self, folder: Path, n: int = 6) -> ProjectStore:
        """A project with n items 'id1'..'idn' (keys 1..n), closed after the test."""
        store = self.make_store(folder, LABELS)
        self._stores.append(store)
        store.add_items((f"id{k}", f"text number {k}", None) for k in range(1, n + 1))
        return store

    def reopened(self, store: ProjectStore, folder: Path) -> ProjectStore:
        fresh = self.reopen_store(store, folder)
        self._stores.append(fresh)
        return fresh

    def queued(self, folder: Path, n: int = 6, reviews_needed: int = 1) -> ProjectStore:
        """n items, all queued; item k has priority n-k, so item 1 comes first."""
        store = self.project(folder, n)
        entries = [
            QueueEntry(k, "disagree", float(n - k), 1, {"best": "refund"}, reviews_needed)
            for k in range(1, n + 1)
        ]
        assert store.enqueue(entries) == n
        return store

    # ---- opening, label set, meta, rounds ------------------------------------------------------
    def test_is_a_project_store_with_its_label_set_and_a_context(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        assert isinstance(store, ProjectStore)
        assert store.label_set == LABELS
        store = self.reopened(store, tmp_path / "p")
        assert store.label_set.describe("card_lost") == "card gone"
        with store as entered:
            assert entered is store
            assert entered.count_items() == 6

    def test_meta_and_rounds_round_trip(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        store.set_meta("estimated_accuracy", {"value": 0.9, "low": 0.85, "high": 0.93})
        first = store.start_round()
        store.finish_round(first, {"labelled": 12})
        second = store.start_round()
        store = self.reopened(store, tmp_path / "p")
        assert store.get_meta("estimated_accuracy") == {"value": 0.9, "low": 0.85, "high": 0.93}
        assert store.get_meta("missing", "dflt") == "dflt"
        rounds = store.rounds()
        assert [r["id"] for r in rounds] == [first, second]
        assert rounds[0]["stats"] == {"labelled": 12} and rounds[0]["finished_at"] is not None
        assert rounds[1]["finished_at"] is None

    def test_rounds_start_empty_and_meta_is_replaced(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        assert store.rounds() == []
        assert store.start_round() < store.start_round()
        store.set_meta("k", [1, 2])
        store.set_meta("k", "two")
        assert store.get_meta("k") == "two" and store.get_meta("none") is None

    # ---- items -------------------------------------------------------------------------------
    def test_add_items_skips_known_ids_and_refuses_a_changed_text(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p", n=3)
        again = store.add_items([("id1", "text number 1", None), ("new", "fresh text", None)])
        assert (again.added, again.skipped) == (1, 1)
        with pytest.raises(InputError, match="id 'id2' is already in the project"):
            store.add_items([("brand", "new text", None), ("id2", "another text", None)])
        assert store.count_items() == 4  # the whole failed batch rolled back, 'brand' included
        assert store.existing_ids(["id1", "brand", "new"]) == {"id1", "new"}

    def test_items_by_key_keep_the_order_asked_and_batches_cover_all(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p", n=25)
        assert [i.key for i in store.items([7, 2, 19])] == [7, 2, 19]
        batches = list(store.iter_items(batch=10))
        assert [len(b) for b in batches] == [10, 10, 5]
        assert [i.key for b in batches for i in b] == list(range(1, 26))
        assert store.items([3])[0].text_hash == text_hash("text number 3")

    def test_items_keep_input_order_and_seed_labels_are_import_labels(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p", n=0)
        rows = [("b", "second", "refund"), ("a", "first", None), ("c", "third", "other")]
        assert store.add_items(rows, source_file="in.csv") == ImportResult(3, 0, 2)
        items = store.items()
        assert [(i.id, i.text) for i in items] == [("b", "second"), ("a", "first"), ("c", "third")]
        assert store.count_items() == 3 and store.items([]) == []
        assert store.existing_ids([]) == set()
        seeds = [(c.item_key, c.label, c.source, c.actor) for c in store.label_annotations()]
        one, _, three = (i.key for i in items)
        assert seeds == [(one, "refund", "import", "import"), (three, "other", "import", "import")]

    # ---- annotations -------------------------------------------------------------------------
    def test_human_beats_llm_beats_model_whatever_the_order(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
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

    def test_newest_wins_within_a_rank_and_votes_never_label(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        store.add_annotations([label(1, "refund", Source.HUMAN, "ann")])
        store.add_annotations([label(1, "other", Source.HUMAN, "bob")])
        store.add_annotations([Annotation(1, "card_lost", Source.HUMAN, Kind.VOTE, actor="z")])
        current = current_labels(store)[1]
        assert (current.label, current.actor) == ("other", "bob")
        assert len(store.annotations(item_key=1)) == 3  # append-only: nothing overwritten

    def test_the_watermark_moves_with_every_write_to_the_log(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        assert store.annotation_watermark() == 0
        [first] = store.add_annotations([label(1, "other", Source.LLM)])
        assert store.annotation_watermark() == first
        store.retract(first, actor="ann")  # the log grows even though nothing new stands
        assert store.annotation_watermark() > first

    def test_retract_hides_an_annotation_and_the_previous_label_returns(
        self, tmp_path: Path
    ) -> None:
        store = self.project(tmp_path / "p")
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

    def test_annotation_provenance_is_kept(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        note = Annotation(
            2, "refund", Source.LLM, Kind.VOTE, actor="gpt", confidence=0.8,
            rationale="asks for money", prompt_hash="abc123", round=3, duration_ms=40,
            meta={"method": "logprob"},
        )  # fmt: skip
        store.add_annotations([note])
        store = self.reopened(store, tmp_path / "p")
        [row] = store.annotations(source="llm", kind="vote")
        expected = {
            "item_key": 2, "label": "refund", "source": "llm", "kind": "vote", "actor": "gpt",
            "confidence": 0.8, "rationale": "asks for money", "prompt_hash": "abc123", "round": 3,
            "duration_ms": 40, "target": None,
        }  # fmt: skip
        assert {k: row[k] for k in expected} == expected
        assert json.loads(row["meta"]) == {"method": "logprob"} and row["created_at"] > 0

    def test_an_abstaining_human_label_is_current_but_not_counted(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        store.add_annotations([label(1, "refund", Source.LLM), label(1, None, Source.HUMAN)])
        assert current_labels(store)[1].label is None
        assert counts_by_source(store) == {}

    def test_annotations_filter_and_count_by_source_kind_and_item(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        ids = store.add_annotations(
            [vote(1, "refund", Source.LLM), label(1, "refund", Source.LLM),
             label(2, "other", Source.HUMAN), vote(2, "other", Source.MODEL)]
        )  # fmt: skip
        assert ids == sorted(set(ids)) and len(ids) == 4
        assert [a["kind"] for a in store.annotations(source="llm")] == ["vote", "label"]
        assert [a["id"] for a in store.annotations(kind="vote")] == [ids[0], ids[3]]
        assert store.annotations(source="human", kind="vote") == []
        assert [a["id"] for a in store.annotations(source="model", item_key=2)] == [ids[3]]
        assert store.count_annotations() == 4 and store.count_annotations(source="llm") == 2
        store.retract(ids[0], "x")
        assert [a["id"] for a in store.annotations()] == ids[1:]  # no retraction rows either
        assert store.count_annotations(kind="vote") == 1

    def test_label_annotations_are_every_standing_label_oldest_first(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        ids = store.add_annotations(
            [label(1, "other", Source.LLM), label(1, "refund", Source.HUMAN, "ann"),
             vote(2, "refund", Source.LLM), label(2, None, Source.HUMAN, "bob")]
        )  # fmt: skip
        store.retract(ids[0], "ann")
        rows = store.label_annotations()
        got = [(r.item_key, r.label, r.source, r.actor, r.annotation_id) for r in rows]
        assert got == [(1, "refund", "human", "ann", ids[1]), (2, None, "human", "bob", ids[3])]
        assert all(r.created_at > 0 and r.round == 0 for r in rows)
        assert store.label_annotations(sources=["llm"]) == []
        assert [r.annotation_id for r in store.label_annotations(["model", "human"])] == ids[1::2]

    # ---- latest votes ------------------------------------------------------------------------
    def test_latest_votes_are_each_items_newest_standing_vote(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        ids = store.add_annotations(
            [vote(1, "refund", Source.LLM, 0.6), vote(1, "other", Source.LLM, 0.9),
             vote(2, None, Source.LLM), vote(2, "refund", Source.MODEL),
             label(3, "refund", Source.LLM)]
        )  # fmt: skip
        latest = store.latest_votes("llm")
        assert set(latest) == {1, 2}  # labels are not votes
        assert latest[1] == store.annotations(source="llm", kind="vote", item_key=1)[-1]
        newest = latest[1]
        assert (newest["id"], newest["label"], newest["confidence"]) == (ids[1], "other", 0.9)
        assert latest[2]["label"] is None  # an abstain is a vote too
        store.retract(ids[1], "x")
        assert store.latest_votes("llm")[1]["id"] == ids[0]
        assert store.latest_votes("llm", [1])[1]["id"] == ids[0]
        assert store.latest_votes("model") == {2: store.annotations(source="model")[0]}
        assert store.latest_votes("human") == {}

    def test_latest_votes_of_given_keys_across_many_keys(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p", n=2000)
        store.add_annotations([vote(k, "refund", Source.LLM) for k in range(1, 2001)])
        store.add_annotations([vote(k, "other", Source.LLM) for k in range(1, 2001, 2)])
        keys = list(range(1900, 0, -1))
        latest = store.latest_votes("llm", keys)
        assert set(latest) == set(keys)
        assert all(latest[k]["label"] == ("other" if k % 2 else "refund") for k in keys)
        assert len(store.latest_votes("llm")) == 2000
        assert store.latest_votes("llm", []) == {}
        assert set(store.latest_votes("llm", [5, 99_999])) == {5}

    # ---- human decisions ---------------------------------------------------------------------
    def test_record_human_labels_appends_and_completes_in_order(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=3)
        store.add_items([("never", "an item never queued", None)])  # key 4
        store.lease("ann", n=1)
        labels = [label(1, "refund", Source.HUMAN, "ann"), label(2, None, Source.HUMAN, "ann")]
        ids = store.record_human_labels(labels, "ann")
        rows = store.annotations(source="human")
        assert ids == [a["id"] for a in rows]
        got = [(a["item_key"], a["label"], a["kind"]) for a in rows]
        assert got == [(1, "refund", "label"), (2, None, "label")]
        assert store.queue_counts() == {"done": 2, "pending": 1}
        assert [e.item_key for e in store.lease("bob", n=3)] == [3]
        assert store.record_human_labels([], "ann") == []
        [four] = store.record_human_labels([label(4, "other", Source.HUMAN, "lib")], "lib")
        assert [a["id"] for a in store.annotations(item_key=4)] == [four]
        assert store.queue_counts() == {"done": 2, "pending": 1}  # nothing queued: no change

    def test_record_human_labels_counts_one_review_of_an_overlap_item(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=1, reviews_needed=2)
        store.lease("ann", n=1)
        store.record_human_labels([label(1, "refund", Source.HUMAN, "ann")], "ann")
        assert store.queue_counts() == {"pending": 1}
        assert store.lease("ann", n=1) == []  # ann has reviewed it already; her lease is freed
        assert [e.item_key for e in store.lease("bob", n=1)] == [1]
        store.record_human_labels([label(1, "other", Source.HUMAN, "bob")], "bob")
        assert store.queue_counts() == {"done": 1}

    def test_record_human_labels_writes_all_or_nothing(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=2)
        store.lease("ann", n=1)
        unknown = [label(1, "refund", Source.HUMAN, "ann"), label(99, "refund", Source.HUMAN)]
        with pytest.raises(StoreError, match="no item 99"):
            store.record_human_labels(unknown, "ann")
        machine = [label(1, "refund", Source.HUMAN, "ann"), label(2, "refund", Source.LLM)]
        with pytest.raises(ValueError, match="not a human label"):
            store.record_human_labels(machine, "ann")
        assert store.annotations() == []
        assert store.queue_counts() == {"pending": 2}
        assert [e.item_key for e in store.lease("bob", n=2)] == [2]  # ann still holds item 1

    # ---- caches ------------------------------------------------------------------------------
    def test_llm_cache_and_its_totals_survive_reopening(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        assert store.cache_get("k1") is None
        store.cache_put("k1", "m", {"label": "refund"}, 100, 5, 0.002)
        store.cache_put("k2", "m", {"label": "other"}, 50, 7, 0.001)
        store = self.reopened(store, tmp_path / "p")
        assert store.cache_get("k1") == {"label": "refund"}
        totals = store.cache_totals()
        assert totals == pytest.approx(
            {"calls": 2, "prompt_tokens": 150, "completion_tokens": 12, "cost_usd": 0.003}
        )

    def test_cache_put_many_and_a_replaced_key(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p")
        empty = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        assert store.cache_totals() == empty
        store.cache_put_many([("a", "m", {"x": 1}, 10, 1, 0.5), ("b", "m", {"x": 2}, 20, 2, 0.25)])
        store.cache_put("a", "m", {"x": 3}, 5, 0, 0.0)
        assert store.cache_get("a") == {"x": 3} and store.cache_get("b") == {"x": 2}
        assert store.cache_totals() == pytest.approx(
            {"calls": 2, "prompt_tokens": 25, "completion_tokens": 2, "cost_usd": 0.25}
        )

    def test_vectors_round_trip_by_model_and_hash(self, tmp_path: Path) -> None:
        vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
        store = self.project(tmp_path / "p")
        store.put_vectors("mini", ["h1", "h2", "h3"], vectors)
        store.put_vectors("other", ["h1"], vectors[2:] * 2)
        store = self.reopened(store, tmp_path / "p")
        found = store.get_vectors("mini", ["h3", "h1", "missing"])
        assert set(found) == {"h1", "h3"}
        np.testing.assert_array_equal(found["h3"], vectors[2])
        np.testing.assert_array_equal(found["h1"], vectors[0])
        np.testing.assert_array_equal(store.get_vectors("other", ["h1"])["h1"], vectors[2] * 2)
        assert store.get_vectors("mini", []) == {}

    def test_the_pool_streams_missing_texts_and_vectors_in_key_order(
        self, tmp_path: Path
    ) -> None:
        store = self.project(tmp_path / "p", n=0)
        store.add_items([("a", "same text", None), ("b", "other", None), ("c", "same text", None)])
        items = store.items()
        same, other = items[0].text_hash, items[1].text_hash
        assert store.count_missing_vectors("mini") == 2  # identical texts count once
        pages = [store.missing_texts("mini", "", 1)]
        pages.append(store.missing_texts("mini", pages[0][-1][0], 5))
        assert sorted(p[0] for p in pages) == sorted([(same, "same text"), (other, "other")])
        assert store.missing_texts("mini", pages[1][-1][0], 5) == []
        vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
        store.put_vectors("mini", [same, other], vectors)
        assert store.count_missing_vectors("mini") == 0
        assert store.missing_texts("mini", "", 5) == []
        assert store.count_missing_vectors("other-model") == 2
        keys = [it.key for it in items]
        rows = store.vectors_by_key("mini", 0, keys[-1], 10)
        assert [k for k, _ in rows] == keys
        got = [np.frombuffer(v, dtype=np.float32) for _, v in rows]
        np.testing.assert_array_equal(np.stack(got), vectors[[0, 1, 0]])
        assert [k for k, _ in store.vectors_by_key("mini", keys[0], keys[1], 10)] == [keys[1]]
        assert store.vectors_by_key("other-model", 0, keys[-1], 1) == [(keys[0], None)]

    def test_keys_for_ids_names_the_ids_that_exist(self, tmp_path: Path) -> None:
        store = self.project(tmp_path / "p", n=0)
        store.add_items([("a", "one", None), ("b", "two", None)])
        keys = {it.id: it.key for it in store.items()}
        assert store.keys_for_ids(["b", "zz", "a", "b"]) == keys
        assert store.keys_for_ids([]) == {}

    # ---- review queue ------------------------------------------------------------------------
    def test_lease_gives_most_valuable_first_and_never_the_same_item_twice(
        self, tmp_path: Path
    ) -> None:
        store = self.queued(tmp_path / "p")
        ann = store.lease("ann", n=2)
        bob = store.lease("bob", n=3)
        assert [e.item_key for e in ann] == [1, 2]
        assert [e.item_key for e in bob] == [3, 4, 5]
        assert ann[0].suggestion == {"best": "refund"} and ann[0].reason == "disagree"
        assert [e.item_key for e in store.lease("ann", n=2)] == [1, 2]  # re-lease own items
        assert store.queue_size() == 6  # leased items are still pending until reviewed

    def test_complete_release_demote_and_reopen(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p")
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

    def test_a_skip_is_one_operators_and_outlasts_a_queue_refresh(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=4)
        [first] = store.lease("ann", n=1)
        store.skip(first.item_key, "ann")
        store.skip(2, "ann")  # not leased by ann: skipped all the same, nobody's lease changes
        assert store.skipped("ann") == [1, 2] and store.skipped("bob") == []
        store.enqueue([QueueEntry(1, "audit", 99.0, 2, {"best": "refund"})])  # a refresh
        assert [e.item_key for e in store.lease("ann", n=4)] == [3, 4, 1, 2]
        assert store.lease("bob", n=1) == []  # ann holds all four now
        store.release_operator("ann")
        assert [e.item_key for e in store.lease("bob", n=4)] == [1, 2, 3, 4]  # by priority for bob
        store.release_operator("bob")
        review(store, 1, "ann")  # an answer ends ann's skip of it
        assert store.skipped("ann") == [2]

    def test_reopened_item_can_be_leased_again_by_the_operator_who_undid_it(
        self, tmp_path: Path
    ) -> None:
        store = self.queued(tmp_path / "p", n=2)
        [entry] = store.lease("ann", n=1)
        [undone] = store.add_annotations([label(entry.item_key, "refund", Source.HUMAN, "ann")])
        store.complete(entry.item_key, "ann")
        store.retract(undone, "ann")  # undo
        store.reopen(entry.item_key)
        assert [e.item_key for e in store.lease("ann", n=2)] == [1, 2]

    def test_reopen_with_an_operator_leases_the_item_back_to_them(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=2)
        review(store, 1, "ann")
        store.reopen(1, "bob")
        assert [e.item_key for e in store.lease("cy", n=2)] == [2]  # bob holds item 1
        assert [e.item_key for e in store.lease("bob", n=2)] == [1]  # cy holds item 2

    def test_an_expired_lease_returns_the_item_to_the_queue(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=2)
        assert [e.item_key for e in store.lease("ann", n=1, lease_seconds=0.05)] == [1]
        assert [e.item_key for e in store.lease("bob", n=2)] == [2]
        time.sleep(0.1)
        assert [e.item_key for e in store.lease("bob", n=2)] == [1, 2]
        store.renew(1, "ann")  # ann's renewal comes too late: bob owns it now
        assert store.lease("ann", n=2) == []

    def test_renewal_keeps_a_short_lease_alive(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=1)
        store.lease("ann", n=1, lease_seconds=0.05)
        store.renew(1, "ann", lease_seconds=600)
        time.sleep(0.1)
        assert store.lease("bob", n=1) == []

    def test_enqueue_refreshes_pending_items_but_leaves_reviewed_ones_done(
        self, tmp_path: Path
    ) -> None:
        store = self.queued(tmp_path / "p", n=2)
        review(store, 1, "ann")
        touched = store.enqueue([QueueEntry(1, "audit", 99.0), QueueEntry(2, "audit", 99.0)])
        assert touched == 1
        assert [(e.item_key, e.reason, e.priority) for e in store.pending()] == [(2, "audit", 99.0)]

    def test_queue_size_pending_limit_and_suggestions(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=4)
        assert store.queue_size() == 4 and [e.item_key for e in store.pending(limit=2)] == [1, 2]
        assert suggested(store) == {1: "refund", 2: "refund", 3: "refund", 4: "refund"}
        store.complete(1, "ann")
        store.enqueue([QueueEntry(2, "audit", 9.0, 2, {})])  # refreshed: no suggestion now
        assert suggested(store) == {3: "refund", 4: "refund"}
        assert store.queue_views()[1].state == "done" and store.queue_views()[2].reason == "audit"
        assert store.queue_size() == 3 and store.pending()[0] == QueueEntry(2, "audit", 9.0, 2)

    def test_overlap_items_go_to_two_different_operators(self, tmp_path: Path) -> None:
        store = self.queued(tmp_path / "p", n=1, reviews_needed=2)
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
