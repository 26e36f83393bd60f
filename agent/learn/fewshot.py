"""Few-shot examples: the nearest human-verified items by cosine similarity, label-balanced.

The session rebuilds a `FewShotIndex` whenever humans have labelled more items, so the LLM
always sees the freshest verified neighbours. Selection is vectorised over all queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32 (n, d)."""
    data = np.asarray(vectors, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {data.shape}")
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    return data / np.where(norms > 0, norms, 1.0)


class FewShotIndex:
    """Human-verified items: vectors (m, d), their labels and texts (m each)."""

    def __init__(self, vectors: np.ndarray, labels: Sequence[str], texts: Sequence[str]) -> None:
        if not len(vectors) == len(labels) == len(texts):
            raise ValueError(
                f"vectors, labels and texts differ in length: "
                f"{len(vectors)}, {len(labels)}, {len(texts)}"
            )
        self._vectors = _unit_rows(vectors) if len(vectors) else np.zeros((0, 0), np.float32)
        self._labels = list(labels)
        self._texts = list(texts)
        names, codes = np.unique(np.asarray(self._labels, dtype=object), return_inverse=True)
        self._codes = codes.astype(np.int64).reshape(-1)
        self.n_labels = len(names)

    def __len__(self) -> int:
        return len(self._labels)

    def select(self, query_vecs: np.ndarray, k: int) -> list[list[tuple[str, str]]]:
        """For each query row (n, d): up to k (text, label) examples, most similar first.

        Labels take turns in order of their best similarity to the query (round robin), and
        no label fills more than ceil(k / labels present) places.
        """
        queries = _unit_rows(query_vecs)
        m = len(self)
        if k <= 0 or m == 0:
            return [[] for _ in range(len(queries))]
        if queries.shape[1] != self._vectors.shape[1]:
            raise ValueError(
                f"query dimension {queries.shape[1]} != index dimension {self._vectors.shape[1]}"
            )
        picked = self._pick(queries @ self._vectors.T, k)
        return [[(self._texts[j], self._labels[j]) for j in row] for row in picked]

    def _pick(self, sims: np.ndarray, k: int) -> list[list[int]]:
        """Index rows of the chosen examples for similarities (n, m), in round-robin order."""
        n, m = sims.shape
        cap = math.ceil(k / self.n_labels)
        order = np.argsort(-sims, axis=1, kind="stable")  # (n, m) positions by similarity
        codes = self._codes[order]  # (n, m) label code at each sorted position
        grouped = np.argsort(codes, axis=1, kind="stable")  # sorted positions grouped by label
        group_codes = np.take_along_axis(codes, grouped, axis=1)
        steps = np.arange(m)
        starts = np.ones((n, m), dtype=bool)
        starts[:, 1:] = group_codes[:, 1:] != group_codes[:, :-1]
        group_start = np.maximum.accumulate(np.where(starts, steps, 0), axis=1)
        rank_in_label = steps - group_start  # 0 for a label's most similar item
        label_turn = np.take_along_axis(grouped, group_start, axis=1)  # its label's best position
        key = np.where(rank_in_label < cap, rank_in_label * m + label_turn, np.iinfo(np.int64).max)
        chosen = np.argsort(key, axis=1, kind="stable")[:, :k]  # (n, <=k) into grouped
        valid = np.take_along_axis(key, chosen, axis=1) < np.iinfo(np.int64).max
        positions = np.take_along_axis(grouped, chosen, axis=1)
        rows = np.take_along_axis(order, positions, axis=1)
        return [row[ok].tolist() for row, ok in zip(rows, valid)]


def merge_examples(per_item: Sequence[Sequence[tuple[str, str]]], k: int) -> list[tuple[str, str]]:
    """One few-shot list for a multi-item call: the items' examples taken in turns (each
    item's nearest first), without duplicates, at most k."""
    merged: dict[tuple[str, str], None] = {}
    for rank in range(max((len(ex) for ex in per_item), default=0)):
        for examples in per_item:
            if rank < len(examples) and len(merged) < k:
                merged.setdefault(examples[rank])
    return list(merged)
