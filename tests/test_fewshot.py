"""Few-shot selection: nearest verified items by cosine, label-balanced round robin, vectorised
(checked against a plain per-query loop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.learn.fewshot import FewShotIndex


def reference(
    vectors: np.ndarray, labels: list[str], queries: np.ndarray, k: int
) -> list[list[int]]:
    """The rule written as a loop: labels take turns by their best similarity, capped."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cap = math.ceil(k / len(set(labels)))
    out = []
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        sims = unit @ q
        order = sorted(range(len(labels)), key=lambda j: (-sims[j], j))
        queues: dict[str, list[int]] = {}
        for j in order:
            queues.setdefault(labels[j], []).append(j)
        picked: list[int] = []
        for turn in range(cap):
            for queue in queues.values():  # insertion order = order of best similarity
                if turn < len(queue) and len(picked) < k:
                    picked.append(queue[turn])
        out.append(picked)
    return out


@given(st.integers(1, 40), st.integers(1, 5), st.integers(0, 12), st.integers(0, 2**31 - 1))
@settings(max_examples=150, deadline=None)
def test_matches_the_plain_loop(m: int, n_labels: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(m, 6))
    labels = [f"l{int(c)}" for c in rng.integers(0, n_labels, size=m)]
    texts = [f"t{j}" for j in range(m)]
    queries = rng.normal(size=(5, 6))
    got = FewShotIndex(vectors, labels, texts).select(queries, k)
    expected = reference(vectors, labels, queries, k)
    assert got == [[(texts[j], labels[j]) for j in row] for row in expected]


def test_balanced_nearest_examples() -> None:
    # Three "a" items right next to the query, one "b" and one "c" further away.
    vectors = np.array([[1, 0.01], [1, 0.02], [1, 0.03], [0.5, 1], [0, 1]], dtype=float)
    labels = ["a", "a", "a", "b", "c"]
    index = FewShotIndex(vectors, labels, [f"t{i}" for i in range(5)])
    (chosen,) = index.select(np.array([[1.0, 0.0]]), 4)
    assert [label for _, label in chosen] == ["a", "b", "c", "a"]  # cap ceil(4/3) = 2
    assert chosen[0] == ("t0", "a") and chosen[3] == ("t1", "a")


def test_empty_index_and_zero_k_give_no_examples() -> None:
    empty = FewShotIndex(np.zeros((0, 3)), [], [])
    assert empty.select(np.ones((2, 3)), 4) == [[], []]
    index = FewShotIndex(np.eye(3), ["a", "b", "c"], ["x", "y", "z"])
    assert index.select(np.ones((1, 3)), 0) == [[]]


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        FewShotIndex(np.eye(3), ["a", "b"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="dimension"):
        FewShotIndex(np.eye(3), ["a", "b", "c"], ["x", "y", "z"]).select(np.ones((1, 4)), 2)
