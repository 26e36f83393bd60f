"""Out-of-fold (cross-fitted) probabilities: what a classifier thinks of a row it never saw.

When the classifier learns from the LLM's labels, its in-sample probability for an item mostly
repeats the LLM's label back; a disagreement signal needs the probability from a model fitted
without that item. Rows are split into folds; each fold is scored by a model fitted on the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# fit(rows) -> a function that scores rows: (m,) positions into X -> (m, C) probabilities
FitFn = Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """A seeded fold number (n,) in [0, folds) for each of n rows, as even as possible."""
    rng = np.random.default_rng([seed, 23])
    ids = np.arange(n) % max(folds, 1)
    rng.shuffle(ids)
    return ids


def out_of_fold(
    train: np.ndarray, score_only: np.ndarray, fit: FitFn, folds: int, seed: int
) -> np.ndarray:
    """Cross-fitted probabilities (m, C) for the rows `score_only` (m,), a subset of the
    training rows `train` (t,): each is scored by a model fitted on the folds without it."""
    where = {int(r): i for i, r in enumerate(train)}
    assigned = fold_ids(train.size, folds, seed)
    fold_of = np.array([assigned[where[int(r)]] for r in score_only], dtype=np.int64)
    out: np.ndarray | None = None
    for fold in range(folds):
        mask = fold_of == fold
        if not mask.any():
            continue
        scores = fit(train[assigned != fold])(score_only[mask])
        if out is None:
            out = np.zeros((score_only.size, scores.shape[1]), dtype=np.float32)
        out[mask] = scores
    if out is None:
        raise ValueError("no rows to score out of fold")
    return out


def heldout_probs(judged: np.ndarray, fit_without: FitFn, folds: int, seed: int) -> np.ndarray:
    """Probabilities (m, C) for the rows `judged` (m,), each from a model fitted without its
    fold: `fit_without(held_out)` fits on everything else and returns a scorer. The folds
    depend only on (m, folds, seed), so two `fit_without` are compared on the same split."""
    assigned = fold_ids(judged.size, folds, seed)
    out: np.ndarray | None = None
    for fold in range(folds):
        held = judged[assigned == fold]
        if held.size == 0:
            continue
        scores = fit_without(held)(held)
        if out is None:
            out = np.zeros((judged.size, scores.shape[1]), dtype=np.float64)
        out[assigned == fold] = scores
    if out is None:
        raise ValueError("no rows to score out of fold")
    return out


def log_loss(probs: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log probability (n, C) of the true labels (n,), floored at 1e-4 so one
    confident miss cannot outweigh everything else."""
    right = probs[np.arange(truth.size), truth]
    return float(-np.log(np.clip(right, 1e-4, 1.0)).mean()) if truth.size else 0.0
