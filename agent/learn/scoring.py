"""Row-wise scores of the pool and the combinators that make strategies of them.

A row score maps a block of probabilities (b, C) -> (b,), or of member probabilities
(K, b, C) -> (b,); higher = more worth a look. `uncertainty(score, name)` and
`disagreement(score, name)` turn one into a full strategy: the shared contract, the input
checks, block iteration over the candidates (`blocks`, `_BATCH` rows at a time, so a
1,000,000-row pool is never copied whole) and the top-n selection with rng tie-breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from agent.learn.contract import (
    Array,
    Gen,
    Probs,
    StrategyFn,
    contract,
    need_members,
    need_probs,
    top_n,
)
from agent.types import Selection

_BATCH = 65_536
EPS = 1e-12

RowScore = Callable[[Array], Array]


def blocks(source: Array, cands: Array, axis: int = 0) -> Iterator[tuple[Array, Array, Any]]:
    """Yield (positions into cands (b,), a block of `source` along `axis`, its rows to keep).

    Dense candidate sets are read as pool slices (views) and filtered after the work: fancy-index
    copies of 100 MB blocks were most of the cost at 1,000,000 rows. Sparse ones are gathered.
    """
    n_rows = source.shape[axis]
    if cands.size * 4 < n_rows:
        for start in range(0, cands.size, _BATCH):
            rows = cands[start : start + _BATCH]
            block = source[rows] if axis == 0 else source[:, rows]
            yield np.arange(start, start + rows.size), block, slice(None)
        return
    for start in range(0, n_rows, _BATCH):
        lo, hi = np.searchsorted(cands, [start, start + _BATCH])
        if hi > lo:
            window = slice(start, start + _BATCH)
            block = source[window] if axis == 0 else source[:, window]
            yield np.arange(lo, hi), block, cands[lo:hi] - start


def rowwise(source: Array, cands: Array, fn: RowScore, axis: int = 0) -> np.ndarray:
    """fn over the candidates' rows of `source`, in blocks -> (m,) float64 scores.

    axis=0 takes rows of probs (N, C); axis=1 takes member slices of member_probs (K, N, C).
    """
    out = np.empty(cands.size, np.float64)
    for positions, block, keep in blocks(source, cands, axis):
        out[positions] = fn(np.asarray(block, np.float32))[keep]
    return out


# ---- row scores --------------------------------------------------------------------------------
def one_minus_max(p: np.ndarray) -> np.ndarray:
    """1 - max_c p(c|x) per row of p (b, C): highest where the classifier is least confident."""
    return 1.0 - p.max(axis=1)


def one_minus_margin(p: np.ndarray) -> np.ndarray:
    """1 - (p_top1 - p_top2) per row of p (b, C): highest where the two most probable classes
    are closest; with one class, 1 - p_top1."""
    if p.shape[1] < 2:
        return 1.0 - p[:, 0]
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(p: np.ndarray) -> np.ndarray:
    """Predictive entropy (nats) over the last axis of p (..., C): highest where no label of the
    whole set stands out."""
    return -(p * np.log(np.clip(p, EPS, 1.0))).sum(axis=-1)


def hard_vote_entropy(pk: np.ndarray) -> np.ndarray:
    """Query by committee: entropy of the bootstrap members' hard votes, pk (K, b, C) -> (b,)."""
    n_members, b, n_classes = pk.shape
    votes = pk.argmax(axis=2)
    counts = np.zeros((b, n_classes), np.float32)
    rows = np.arange(b)
    for k in range(n_members):
        counts[rows, votes[k]] += 1.0
    return entropy(counts / n_members)


def mean_kl(pk: np.ndarray) -> np.ndarray:
    """Query by committee: mean KL divergence of each member from the consensus,
    H(mean) - mean H(member), pk (K, b, C) -> (b,)."""
    gap: np.ndarray = entropy(pk.mean(axis=0)) - entropy(pk).mean(axis=0)
    np.maximum(gap, 0.0, out=gap)
    return gap


# ---- combinators -------------------------------------------------------------------------------
def uncertainty(score: RowScore, name: str) -> StrategyFn:
    """Strategy `name`: the candidates with the highest `score` over their rows of probs (N, C)."""

    def strategy(
        probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
    ) -> Selection:
        checked = need_probs(probs, embeddings, name)
        return top_n(rowwise(checked, candidates, score), candidates, n, rng)

    return _named(strategy, name, score)


def disagreement(score: RowScore, name: str) -> StrategyFn:
    """Strategy `name`: the candidates with the highest `score` over their member slices of
    ctx['member_probs'] (K, N, C)."""

    def strategy(
        probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
    ) -> Selection:
        members = need_members(ctx, embeddings, name)
        return top_n(rowwise(members, candidates, score, axis=1), candidates, n, rng)

    return _named(strategy, name, score)


def _named(strategy: StrategyFn, name: str, score: RowScore) -> StrategyFn:
    """`strategy` under the contract, named `name` and documented by its score's docstring."""
    strategy.__name__ = strategy.__qualname__ = name  # type: ignore[attr-defined]
    strategy.__doc__ = score.__doc__
    return contract(strategy)
