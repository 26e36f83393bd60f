"""The one query-strategy signature and the rules every strategy shares.

`contract` wraps a strategy with candidate validation, dedup, PoolExhaustedError and n == 0;
`top_n` and `fill` turn scores or picks into a Selection (best first, ties broken by the rng);
`need_probs` / `need_ctx` / `need_members` check inputs and name what a strategy is missing.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import numpy as np

from agent.errors import ConfigError, PoolExhaustedError
from agent.types import Selection

Array = np.ndarray
Probs = np.ndarray | None
Gen = np.random.Generator


class StrategyFn(Protocol):
    """The one signature every query strategy has."""

    def __call__(
        self, probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
    ) -> Selection: ...


def check_candidates(embeddings: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """Validated unique candidates (m,) int64; raises PoolExhaustedError when n > m."""
    cands = np.asarray(candidates, dtype=np.int64).reshape(-1)
    if cands.size > 1 and not np.all(cands[1:] > cands[:-1]):
        cands = np.unique(cands)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > cands.size:
        raise PoolExhaustedError(f"asked for {n} items but only {cands.size} candidates remain")
    if cands.size and (cands[0] < 0 or cands[-1] >= embeddings.shape[0]):
        raise ValueError(
            f"candidates must lie in [0, {embeddings.shape[0]}); got {cands[0]}..{cands[-1]}"
        )
    return cands


def contract(fn: StrategyFn) -> StrategyFn:
    """Wrap a strategy with the shared contract: validation, dedup, exhaustion, n == 0."""

    @functools.wraps(fn)
    def wrapper(
        probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
    ) -> Selection:
        cands = check_candidates(embeddings, candidates, n)
        if n == 0:
            return Selection(np.empty(0, np.int64), np.empty(0, np.float64))
        return fn(probs, embeddings, cands, n, rng, **ctx)

    return wrapper


def top_n(scores: np.ndarray, cands: np.ndarray, n: int, rng: np.random.Generator) -> Selection:
    """The n highest scores (m,) among cands (m,), best first; ties broken by `rng`. O(m)."""
    scores = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
    pick = np.arange(scores.size)
    if n < scores.size:
        kth = np.partition(scores, scores.size - n)[scores.size - n]
        above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
        pick = np.concatenate([above, rng.choice(tied, n - above.size, replace=False)])
    pick = pick[np.lexsort((rng.random(pick.size), -scores[pick]))]
    return Selection(cands[pick], scores[pick])


def fill(chosen: list[int], scores: list[float], cands: Array, n: int, rng: Gen) -> Selection:
    """Selection of positions `chosen` into cands, topped up at random to n when clusters or
    label lists ran short (e.g. duplicate vectors); extras get the lowest score so far."""
    picked = np.asarray(chosen, np.int64)
    if picked.size < n:
        rest = np.setdiff1d(np.arange(cands.size), picked, assume_unique=True)
        extra = rng.choice(rest, size=n - picked.size, replace=False)
        picked = np.concatenate([picked, extra])
        scores = scores + [min(scores, default=0.0)] * extra.size
    return Selection(cands[picked], np.asarray(scores, np.float64))


def need_probs(probs: np.ndarray | None, embeddings: np.ndarray, name: str) -> np.ndarray:
    """`probs` (N, C) checked against the pool; ConfigError if the strategy has none."""
    if probs is None:
        raise ConfigError(f"strategy '{name}' needs class probabilities; got probs=None")
    if probs.ndim != 2 or probs.shape[0] != embeddings.shape[0]:
        raise ValueError(f"probs must be ({embeddings.shape[0]}, C); got {probs.shape}")
    return probs


def need_ctx(ctx: dict[str, Any], key: str, name: str) -> np.ndarray:
    """Context array `key`; ConfigError naming the strategy when it is missing."""
    if ctx.get(key) is None:
        raise ConfigError(f"strategy '{name}' needs ctx['{key}']; given: {sorted(ctx)}")
    return np.asarray(ctx[key])


def need_members(ctx: dict[str, Any], embeddings: np.ndarray, name: str) -> np.ndarray:
    """ctx['member_probs'] (K, N, C), K >= 1, checked against the pool."""
    members = need_ctx(ctx, "member_probs", name)
    if members.ndim != 3 or members.shape[0] < 1 or members.shape[1] != embeddings.shape[0]:
        raise ValueError(f"member_probs must be (K, {embeddings.shape[0]}, C); got {members.shape}")
    return members
