"""Diversity and coverage strategies: spread picks over the pool's geometry or over the labels.

`kmeans` takes the most central candidate of each of n clusters, `coreset` the farthest from
what is labelled (k-center greedy), `zeroshot` the most label-like candidates, one label at a
time, for a cold start with no classifier. No probabilities needed. Quadratic methods work on a
random sub-sample of the candidates, so each stays about O(N) at 1,000,000 x 384.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from agent.learn.contract import Array, Gen, Probs, contract, fill, need_ctx
from agent.learn.scoring import EPS, blocks
from agent.types import Selection

KMEANS_SAMPLE = 10_000  # candidates clustered by `kmeans` (at least 20 per pick)
CORESET_SAMPLE = 10_000  # candidates scanned by `coreset` (at least 50 per pick)
CORESET_LABELLED = 10_000  # labelled points that `coreset` measures distance to
MINIBATCH_ABOVE = 5_000  # sample size above which clustering uses MiniBatchKMeans


def subsample(cands: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """At most `size` of the candidates, in random order (so argmax ties fall by `rng`)."""
    if cands.size <= size:
        return rng.permutation(cands)
    return rng.choice(cands, size=size, replace=False)


def cluster(X: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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


def representatives(
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


@contract
def kmeans(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Diversity: n k-means clusters of (a sample of) the candidates, the one nearest each centre.

    Score = the cluster's share of the sample, so the most representative come first.
    """
    sample = subsample(candidates, max(KMEANS_SAMPLE, 20 * n), rng)
    X = np.asarray(embeddings[sample], np.float32)
    labels, centres = cluster(X, n, rng)
    rows, scores = representatives(X, labels, centres, None)
    positions = np.searchsorted(candidates, sample[rows]).tolist()
    return fill(positions, scores, candidates, n, rng)


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


@contract
def coreset(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """k-center greedy: repeatedly the candidate farthest from the labelled set and earlier picks.

    ctx `labelled` (L,) pool indices; with none, distances start from the sample's mean.
    Score = Euclidean distance to the nearest centre at the time of picking.
    """
    sample = subsample(candidates, max(CORESET_SAMPLE, 50 * n), rng)
    X = np.asarray(embeddings[sample], np.float32)
    labelled = np.asarray(ctx.get("labelled", np.empty(0, np.int64)), np.int64).reshape(-1)
    if labelled.size:
        centres = embeddings[subsample(labelled, CORESET_LABELLED, rng)]
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


def _top_per_label(
    embeddings: Array, cands: Array, labels: Array, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the k candidates most cosine-similar to it: positions (C, k) into cands and
    sims (C, k), each row sorted best first. One pass over the pool in blocks."""
    best_pos = np.empty((labels.shape[0], 0), np.int64)
    best_sim = np.empty((labels.shape[0], 0), np.float32)
    for positions, block, keep_rows in blocks(embeddings, cands):
        block = np.asarray(block, np.float32)
        sims = (labels @ block.T)[:, keep_rows]  # (C, b), label-major so top-k runs along rows
        sims /= np.maximum(np.sqrt(np.einsum("ij,ij->i", block, block)), EPS)[keep_rows]
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


@contract
def zeroshot(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Cold start with no labels: round-robin over the labels (in an rng order), each giving its
    most cosine-similar candidate not yet taken (ctx `label_embeddings` (C, d)). Score = cosine."""
    labels = need_ctx(ctx, "label_embeddings", "zeroshot").astype(np.float32)
    if labels.ndim != 2 or labels.shape[1] != embeddings.shape[1] or labels.shape[0] < 1:
        raise ValueError(f"label_embeddings must be (C, {embeddings.shape[1]}); got {labels.shape}")
    labels = labels / np.maximum(np.linalg.norm(labels, axis=1, keepdims=True), EPS)
    pos, sims = _top_per_label(embeddings, candidates, labels, n)
    rows, scores = _round_robin(pos, sims, n, rng.permutation(labels.shape[0]))
    return fill(rows, scores, candidates, n, rng)
