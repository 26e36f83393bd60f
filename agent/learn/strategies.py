"""Query strategies: pure functions over pool arrays that choose which candidates to label next.

Every strategy has one signature, `(probs (N, C) | None, embeddings (N, d), candidates (m,),
n, rng, **ctx) -> Selection`, where `candidates` are pool row indices and the Selection holds
n of them, best first, with their scores (higher = more worth a look). `_contract` enforces the
shared rules in one place (unique candidates, PoolExhaustedError, n == 0). Context keys:
`member_probs` (K, N, C), `labelled` (L,) pool indices, `label_embeddings` (C, d),
`hybrid_factor` int. Row-wise scores run in batches; quadratic methods work on a random
sub-sample of the candidates, so each strategy costs about O(N) at 1,000,000 x 384.
Adding a strategy = one function decorated with `_contract` + one line in STRATEGIES.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from agent.errors import ConfigError, PoolExhaustedError
from agent.types import Selection

_BATCH = 65_536
_EPS = 1e-12
KMEANS_SAMPLE = 10_000  # candidates clustered by `kmeans` (at least 20 per pick)
CORESET_SAMPLE = 10_000  # candidates scanned by `coreset` (at least 50 per pick)
CORESET_LABELLED = 10_000  # labelled points that `coreset` measures distance to
MINIBATCH_ABOVE = 5_000  # sample size above which clustering uses MiniBatchKMeans

Array = np.ndarray
Probs = np.ndarray | None
Gen = np.random.Generator


class StrategyFn(Protocol):
    """The one signature every query strategy has."""

    def __call__(
        self, probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
    ) -> Selection: ...


def _check_candidates(embeddings: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
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


def _contract(fn: StrategyFn) -> StrategyFn:
    """Wrap a strategy with the shared contract: validation, dedup, exhaustion, n == 0."""

    @functools.wraps(fn)
    def wrapper(
        probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
    ) -> Selection:
        cands = _check_candidates(embeddings, candidates, n)
        if n == 0:
            return Selection(np.empty(0, np.int64), np.empty(0, np.float64))
        return fn(probs, embeddings, cands, n, rng, **ctx)

    return wrapper


def _top_n(scores: np.ndarray, cands: np.ndarray, n: int, rng: np.random.Generator) -> Selection:
    """The n highest scores (m,) among cands (m,), best first; ties broken by `rng`. O(m)."""
    scores = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
    pick = np.arange(scores.size)
    if n < scores.size:
        kth = np.partition(scores, scores.size - n)[scores.size - n]
        above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
        pick = np.concatenate([above, rng.choice(tied, n - above.size, replace=False)])
    pick = pick[np.lexsort((rng.random(pick.size), -scores[pick]))]
    return Selection(cands[pick], scores[pick])


def _blocks(source: Array, cands: Array, axis: int = 0) -> Iterator[tuple[Array, Array, Any]]:
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


def _rowwise(
    source: Array, cands: Array, fn: Callable[[Array], Array], axis: int = 0
) -> np.ndarray:
    """fn over the candidates' rows of `source`, in blocks -> (m,) float64 scores.

    axis=0 takes rows of probs (N, C); axis=1 takes member slices of member_probs (K, N, C).
    """
    out = np.empty(cands.size, np.float64)
    for positions, block, keep in _blocks(source, cands, axis):
        out[positions] = fn(np.asarray(block, np.float32))[keep]
    return out


def _need_probs(probs: np.ndarray | None, embeddings: np.ndarray, name: str) -> np.ndarray:
    """`probs` (N, C) checked against the pool; ConfigError if the strategy has none."""
    if probs is None:
        raise ConfigError(f"strategy '{name}' needs class probabilities; got probs=None")
    if probs.ndim != 2 or probs.shape[0] != embeddings.shape[0]:
        raise ValueError(f"probs must be ({embeddings.shape[0]}, C); got {probs.shape}")
    return probs


def _need_ctx(ctx: dict[str, Any], key: str, name: str) -> np.ndarray:
    """Context array `key`; ConfigError naming the strategy when it is missing."""
    if ctx.get(key) is None:
        raise ConfigError(f"strategy '{name}' needs ctx['{key}']; given: {sorted(ctx)}")
    return np.asarray(ctx[key])


def _subsample(cands: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """At most `size` of the candidates, in random order (so argmax ties fall by `rng`)."""
    if cands.size <= size:
        return rng.permutation(cands)
    return rng.choice(cands, size=size, replace=False)


def _cluster(X: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k-means of X (s, d) -> (labels (s,), centres (k, d)); mini-batch on large samples."""
    seed = int(rng.integers(2**31 - 1))
    if X.shape[0] > MINIBATCH_ABOVE:
        init_size = min(X.shape[0], max(3 * k, 1_000))  # k-means++ on a slice: most of the cost
        km: Any = MiniBatchKMeans(
            k, batch_size=2048, n_init=1, init_size=init_size, random_state=seed
        )
    else:
        km = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed)
    # One thread: samples are small, and on busy shared cores thread spin-waits cost 10x.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicates: fewer distinct centres
        km.fit(X)
    return km.labels_, km.cluster_centers_.astype(np.float32)


def _fill(chosen: list[int], scores: list[float], cands: Array, n: int, rng: Gen) -> Selection:
    """Selection of positions `chosen` into cands, topped up at random to n when clusters or
    label lists ran short (e.g. duplicate vectors); extras get the lowest score so far."""
    picked = np.asarray(chosen, np.int64)
    if picked.size < n:
        rest = np.setdiff1d(np.arange(cands.size), picked, assume_unique=True)
        extra = rng.choice(rest, size=n - picked.size, replace=False)
        picked = np.concatenate([picked, extra])
        scores = scores + [min(scores, default=0.0)] * extra.size
    return Selection(cands[picked], np.asarray(scores, np.float64))


def _entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) over the last axis of probabilities (..., C)."""
    return -(p * np.log(np.clip(p, _EPS, 1.0))).sum(axis=-1)  # type: ignore[no-any-return]


@_contract
def random_sampling(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Uniform random candidates: the baseline every other strategy must beat."""
    return _top_n(rng.random(candidates.size), candidates, n, rng)


@_contract
def least_confidence(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Highest 1 - max_c p(c|x): the classifier's least confident candidates."""
    probs = _need_probs(probs, embeddings, "least_confidence")
    return _top_n(_rowwise(probs, candidates, lambda p: 1.0 - p.max(axis=1)), candidates, n, rng)


def _one_minus_margin(p: np.ndarray) -> np.ndarray:
    """1 - (p_top1 - p_top2) per row of p (b, C); with one class, 1 - p_top1."""
    if p.shape[1] < 2:
        return 1.0 - p[:, 0]
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


@_contract
def margin(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Smallest gap between the two most probable classes (score 1 - gap)."""
    probs = _need_probs(probs, embeddings, "margin")
    return _top_n(_rowwise(probs, candidates, _one_minus_margin), candidates, n, rng)


@_contract
def entropy(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Highest predictive entropy over the whole label set."""
    probs = _need_probs(probs, embeddings, "entropy")
    return _top_n(_rowwise(probs, candidates, _entropy), candidates, n, rng)


def _member_probs(ctx: dict[str, Any], embeddings: np.ndarray, name: str) -> np.ndarray:
    """ctx['member_probs'] (K, N, C), K >= 1, checked against the pool."""
    members = _need_ctx(ctx, "member_probs", name)
    if members.ndim != 3 or members.shape[0] < 1 or members.shape[1] != embeddings.shape[0]:
        raise ValueError(f"member_probs must be (K, {embeddings.shape[0]}, C); got {members.shape}")
    return members


def _vote_entropy(pk: np.ndarray) -> np.ndarray:
    """Entropy of the members' hard votes: pk (K, b, C) -> (b,)."""
    n_members, b, n_classes = pk.shape
    votes = pk.argmax(axis=2)
    counts = np.zeros((b, n_classes), np.float32)
    rows = np.arange(b)
    for k in range(n_members):
        counts[rows, votes[k]] += 1.0
    return _entropy(counts / n_members)


def _mean_kl(pk: np.ndarray) -> np.ndarray:
    """Mean KL(member || consensus) = H(mean) - mean H(member): pk (K, b, C) -> (b,)."""
    gap: np.ndarray = _entropy(pk.mean(axis=0)) - _entropy(pk).mean(axis=0)
    np.maximum(gap, 0.0, out=gap)
    return gap


@_contract
def vote_entropy(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Query by committee: entropy of the bootstrap members' votes (ctx `member_probs`)."""
    members = _member_probs(ctx, embeddings, "vote_entropy")
    return _top_n(_rowwise(members, candidates, _vote_entropy, axis=1), candidates, n, rng)


@_contract
def kl_consensus(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Query by committee: mean KL divergence of each member from the consensus."""
    members = _member_probs(ctx, embeddings, "kl_consensus")
    return _top_n(_rowwise(members, candidates, _mean_kl, axis=1), candidates, n, rng)


def _representatives(
    X: np.ndarray, labels: np.ndarray, centres: np.ndarray, value: np.ndarray | None
) -> tuple[list[int], list[float]]:
    """Per cluster, the row of X nearest its centre (value None) or with the highest value.

    Returns (rows, scores) best first; the score is the cluster's share of X or the value.
    """
    rows, scores = [], []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        if value is None:
            best = members[np.argmin(((X[members] - centres[k]) ** 2).sum(axis=1))]
            rows.append(int(best))
            scores.append(members.size / labels.size)
        else:
            best = members[np.argmax(value[members])]
            rows.append(int(best))
            scores.append(float(value[best]))
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [rows[i] for i in order], [scores[i] for i in order]


@_contract
def kmeans(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Diversity: n k-means clusters of (a sample of) the candidates, the one nearest each centre.

    Score = the cluster's share of the sample, so the most representative come first.
    """
    sample = _subsample(candidates, max(KMEANS_SAMPLE, 20 * n), rng)
    X = np.asarray(embeddings[sample], np.float32)
    labels, centres = _cluster(X, n, rng)
    rows, scores = _representatives(X, labels, centres, None)
    positions = np.searchsorted(candidates, sample[rows]).tolist()
    return _fill(positions, scores, candidates, n, rng)


def _min_sq_dist(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each row of X (s, d) to its nearest centre (c, d)."""
    out = np.full(X.shape[0], np.inf, np.float32)
    for start in range(0, centres.shape[0], 2048):
        c = centres[start : start + 2048]
        part = X @ c.T  # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c; |x|^2 is added after the min
        part *= -2.0
        part += (c * c).sum(axis=1)
        np.minimum(out, part.min(axis=1), out=out)
    out += (X * X).sum(axis=1)
    return np.maximum(out, np.float32(0.0))


@_contract
def coreset(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """k-center greedy: repeatedly the candidate farthest from the labelled set and earlier picks.

    ctx `labelled` (L,) pool indices; with none, distances start from the sample's mean.
    Score = Euclidean distance to the nearest centre at the time of picking.
    """
    sample = _subsample(candidates, max(CORESET_SAMPLE, 50 * n), rng)
    X = np.asarray(embeddings[sample], np.float32)
    labelled = np.asarray(ctx.get("labelled", np.empty(0, np.int64)), np.int64).reshape(-1)
    if labelled.size:
        centres = embeddings[_subsample(labelled, CORESET_LABELLED, rng)]
    else:
        centres = X.mean(axis=0, keepdims=True)
    dist = _min_sq_dist(X, np.asarray(centres, np.float32))
    x2 = (X * X).sum(axis=1)
    rows, scores = [], []
    for _ in range(n):
        best = int(np.argmax(dist))
        rows.append(best)
        scores.append(float(np.sqrt(max(dist[best], 0.0))))
        np.minimum(dist, x2 + x2[best] - 2.0 * (X @ X[best]), out=dist)
        dist[rows] = -1.0  # never pick a row twice, even among exact duplicates
    positions = np.searchsorted(candidates, sample[rows])
    return Selection(candidates[positions], np.asarray(scores, np.float64))


@_contract
def hybrid(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Uncertainty x diversity: the `hybrid_factor` * n smallest-margin candidates (default 10)
    are clustered into n groups and each group gives its most uncertain member."""
    probs = _need_probs(probs, embeddings, "hybrid")
    factor = int(ctx.get("hybrid_factor", 10))
    if factor < 1:
        raise ConfigError(f"hybrid_factor must be >= 1, got {factor}")
    uncertain = _top_n(
        _rowwise(probs, candidates, _one_minus_margin),
        np.arange(candidates.size),
        min(candidates.size, factor * n),
        rng,
    )
    X = np.asarray(embeddings[candidates[uncertain.indices]], np.float32)
    labels, centres = _cluster(X, n, rng)
    rows, scores = _representatives(X, labels, centres, uncertain.scores)
    return _fill(uncertain.indices[rows].tolist(), scores, candidates, n, rng)


def _top_per_label(
    embeddings: Array, cands: Array, labels: Array, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the k candidates most cosine-similar to it: positions (C, k) into cands and
    sims (C, k), each row sorted best first. One pass over the pool in blocks."""
    best_pos = np.empty((labels.shape[0], 0), np.int64)
    best_sim = np.empty((labels.shape[0], 0), np.float32)
    for positions, block, keep_rows in _blocks(embeddings, cands):
        block = np.asarray(block, np.float32)
        sims = (labels @ block.T)[:, keep_rows]  # (C, b), label-major so top-k runs along rows
        sims /= np.maximum(np.sqrt(np.einsum("ij,ij->i", block, block)), _EPS)[keep_rows]
        best_sim = np.hstack([best_sim, sims])
        best_pos = np.hstack([best_pos, np.broadcast_to(positions, sims.shape)])
        if best_sim.shape[1] > k:
            top = np.argpartition(-best_sim, k - 1, axis=1)[:, :k]
            best_sim = np.take_along_axis(best_sim, top, axis=1)
            best_pos = np.take_along_axis(best_pos, top, axis=1)
    order = np.argsort(-best_sim, axis=1, kind="stable")
    return np.take_along_axis(best_pos, order, axis=1), np.take_along_axis(best_sim, order, axis=1)


def _round_robin(pos: Array, sims: Array, n: int, order: Array) -> tuple[list[int], list[float]]:
    """Take n distinct positions from the per-label ranked rows of pos (C, k), one label at a
    time in `order`; a label whose next item is taken moves on to its following one."""
    cursor = np.zeros(pos.shape[0], np.int64)
    taken: set[int] = set()
    rows: list[int] = []
    scores: list[float] = []
    while len(rows) < n:
        before = len(rows)
        for c in order:
            while cursor[c] < pos.shape[1] and int(pos[c, cursor[c]]) in taken:
                cursor[c] += 1
            if cursor[c] < pos.shape[1] and len(rows) < n:
                taken.add(int(pos[c, cursor[c]]))
                rows.append(int(pos[c, cursor[c]]))
                scores.append(float(sims[c, cursor[c]]))
        if len(rows) == before:  # every list used up; cannot happen while k >= n
            break
    return rows, scores


@_contract
def zeroshot(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Cold start with no labels: round-robin over the labels (in an rng order), each giving its
    most cosine-similar candidate not yet taken (ctx `label_embeddings` (C, d)). Score = cosine."""
    labels = _need_ctx(ctx, "label_embeddings", "zeroshot").astype(np.float32)
    if labels.ndim != 2 or labels.shape[1] != embeddings.shape[1] or labels.shape[0] < 1:
        raise ValueError(f"label_embeddings must be (C, {embeddings.shape[1]}); got {labels.shape}")
    labels = labels / np.maximum(np.linalg.norm(labels, axis=1, keepdims=True), _EPS)
    pos, sims = _top_per_label(embeddings, candidates, labels, n)
    rows, scores = _round_robin(pos, sims, n, rng.permutation(labels.shape[0]))
    return _fill(rows, scores, candidates, n, rng)


STRATEGIES: dict[str, StrategyFn] = {
    "random": random_sampling,
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "vote_entropy": vote_entropy,
    "kl_consensus": kl_consensus,
    "kmeans": kmeans,
    "coreset": coreset,
    "hybrid": hybrid,
    "zeroshot": zeroshot,
}


def get_strategy(name: str) -> StrategyFn:
    """The registered strategy `name`; ConfigError listing the known names otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ConfigError(f"unknown strategy '{name}'; known: {known}") from None
