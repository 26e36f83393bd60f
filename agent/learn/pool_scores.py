"""Scoring the pool as a batch function over columns, the unit both engines run (agent/batch/).

A vector block is the columns {"row": (b,) int64 pool positions, "vector": (b, d) float32};
`score_batch` gives the committee's view of it: {"row", "probs" (b, C), "members" (b, K, C),
"zeroshot" (b, C)}. `collect_scores` puts blocks that arrive in any order back into pool
arrays. The local engine and Ray Data's `map_batches` call the same two functions on the same
blocks (`blocks`), so both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

import numpy as np

from agent.learn.committee import Committee, zero_shot_proba

Columns = Mapping[str, np.ndarray]
BLOCK_ROWS = 16_384  # rows per block: 5 members x 16,384 x 100 labels x 4 B = 33 MB at most


class PoolScores(NamedTuple):
    """probs (n, C), members (K, n, C), zeroshot (n, C), all float32."""

    probs: np.ndarray
    members: np.ndarray
    zeroshot: np.ndarray


def blocks(vectors: np.ndarray, rows: int = BLOCK_ROWS) -> Iterator[dict[str, np.ndarray]]:
    """The pool's vectors (n, d) as blocks {"row" (b,), "vector" (b, d)} of `rows` rows."""
    for start in range(0, vectors.shape[0], rows):
        stop = min(start + rows, vectors.shape[0])
        yield {"row": np.arange(start, stop, dtype=np.int64), "vector": vectors[start:stop]}


def score_batch(
    batch: Columns, committee: Committee, label_vectors: np.ndarray
) -> dict[str, np.ndarray]:
    """{"row" (b,), "vector" (b, d)} -> {"row", "probs" (b, C), "members" (b, K, C),
    "zeroshot" (b, C)}: the main member, each bootstrap member, and the label descriptions."""
    vectors = np.asarray(batch["vector"], dtype=np.float32)
    members = committee.member_proba(vectors)  # (K, b, C)
    return {
        "row": np.asarray(batch["row"], dtype=np.int64),
        "probs": committee.predict_proba(vectors),
        "members": np.ascontiguousarray(members.transpose(1, 0, 2)),
        "zeroshot": zero_shot_proba(vectors, label_vectors, committee.temperature),
    }


def collect_scores(n: int, scored: Iterable[Columns], n_members: int, n_classes: int) -> PoolScores:
    """Pool arrays from scored blocks in any order; refuses a pool left with unscored rows."""
    out = PoolScores(
        np.empty((n, n_classes), dtype=np.float32),
        np.empty((n_members, n, n_classes), dtype=np.float32),
        np.empty((n, n_classes), dtype=np.float32),
    )
    seen = np.zeros(n, dtype=bool)
    for block in scored:
        rows = np.asarray(block["row"], dtype=np.int64)
        out.probs[rows] = block["probs"]
        out.members[:, rows] = np.asarray(block["members"]).transpose(1, 0, 2)
        out.zeroshot[rows] = block["zeroshot"]
        seen[rows] = True
    if not seen.all():
        raise RuntimeError(f"{int((~seen).sum())} of {n} pool rows came back unscored")
    return out
