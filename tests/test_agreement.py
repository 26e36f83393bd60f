"""Cohen's kappa and the overlap summary shown by `status`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from agent.app.kappa import NONE_FITS, agreement_summary, cohen_kappa, overlap_pairs
from agent.store.sqlite import Store
from agent.types import Annotation, Kind, LabelSet, Source


def test_kappa_matches_sklearn_on_random_raters() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    labels = ["a", "b", "c", "d"]
    first = [str(x) for x in rng.choice(labels, 200)]
    second = [x if rng.random() < 0.6 else str(rng.choice(labels)) for x in first]
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))


def test_kappa_edge_cases() -> None:
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement is 1: undefined
    with pytest.raises(ValueError, match="differ in length"):
        cohen_kappa(["a"], [])


def test_overlap_pairs_uses_latest_label_of_first_two_operators() -> None:
    rows = [
        {"item_key": 1, "actor": "alice", "label": "x"},
        {"item_key": 1, "actor": "bob", "label": "y"},
        {"item_key": 1, "actor": "alice", "label": "y"},  # alice changes her mind
        {"item_key": 1, "actor": "carol", "label": "z"},  # third operator: not in the pair
        {"item_key": 2, "actor": "alice", "label": "x"},  # one operator only: no pair
        {"item_key": 3, "actor": "bob", "label": None},
        {"item_key": 3, "actor": "alice", "label": None},
    ]
    assert overlap_pairs(rows) == [("y", "y"), (NONE_FITS, NONE_FITS)]


def test_summary_reads_human_labels_from_store(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "p", LabelSet(("x", "y")))
    store.add_items((f"i{i}", f"text {i}", None) for i in range(4))
    both = [("alice", ["x", "y", "x", "y"]), ("bob", ["x", "y", "y", "y"])]
    for actor, labels in both:
        store.add_annotations(
            [Annotation(k + 1, lab, Source.HUMAN, Kind.LABEL, actor=actor)
             for k, lab in enumerate(labels)]
        )
    llm = store.add_annotations([Annotation(1, "y", Source.LLM, Kind.LABEL, actor="gpt")])
    assert llm  # LLM labels never count as an operator
    summary = agreement_summary(store)
    assert summary["items"] == 4
    assert summary["observed"] == pytest.approx(0.75)
    assert summary["kappa"] == pytest.approx(
        round(cohen_kappa_score(both[0][1], both[1][1]), 4)
    )
    retracted = store.annotations(source="human", kind="label", item_key=3)[-1]["id"]
    store.retract(retracted, "bob")  # bob's undo: item 3 has only alice's label now
    assert agreement_summary(store)["items"] == 3
    store.close()
