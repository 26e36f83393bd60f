"""One-vs-rest on the embeddings for multi-label projects: per-label probabilities P(label in
the item's set), cross-fitted where they judge the labels they were fitted on, and the row
scores of the multi-label query strategies. Arrays in, arrays out; no store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

MIN_PER_SIDE = 2  # a label needs this many items in and out of sets before it gets a model


@dataclass(frozen=True)
class OneVsRest:
    """Per-label logistic models; a label seen too rarely keeps its smoothed base rate."""

    models: tuple[LogisticRegression | None, ...]
    base_rates: np.ndarray  # (C,) (in + 1) / (n + 2)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(label in the set) (n, C) float64."""
        out = np.tile(self.base_rates, (X.shape[0], 1))
        for c, model in enumerate(self.models):
            if model is not None and X.shape[0]:
                out[:, c] = model.predict_proba(X)[:, 1]
        return out


def fit_ovr(
    X: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None, c: float = 1.0,
    seed: int = 0,
) -> OneVsRest:
    """Fit on X (n, d) and indicator rows Y (n, C) 0/1, optional row weights (n,)."""
    n, n_labels = Y.shape
    positives = Y.sum(axis=0)
    base = (positives + 1.0) / (n + 2.0)
    models: list[LogisticRegression | None] = []
    for col in range(n_labels):
        if positives[col] < MIN_PER_SIDE or n - positives[col] < MIN_PER_SIDE:
            models.append(None)
            continue
        model = LogisticRegression(C=c, max_iter=300, random_state=seed)
        model.fit(X, Y[:, col], sample_weight=weights)
        models.append(model)
    return OneVsRest(tuple(models), base)


def crossfit_proba(
    X: np.ndarray, Y: np.ndarray, folds: int = 5, c: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Out-of-fold P(label in the set) (n, C) for the training rows themselves: each row is
    judged by a model that never saw it, so agreement is not the model agreeing with itself."""
    n = X.shape[0]
    out = np.zeros(Y.shape, dtype=np.float64)
    if n < 2:
        return np.tile((Y.sum(axis=0) + 1.0) / (n + 2.0), (n, 1))
    fold_of = np.random.default_rng(seed).permutation(n) % min(folds, n)
    for f in range(min(folds, n)):
        held = fold_of == f
        out[held] = fit_ovr(X[~held], Y[~held], c=c, seed=seed).predict_proba(X[held])
    return out


# ---- row scores of the multi-label query strategies: p (b, C) -> (b,) ---------------------
def label_uncertainty(p: np.ndarray) -> np.ndarray:
    """1 - |2p - 1| per label: 1 at p = 0.5, 0 at a sure 0 or 1 (b, C)."""
    return 1.0 - np.abs(2.0 * np.asarray(p, np.float64) - 1.0)


def mean_label_uncertainty(p: np.ndarray) -> np.ndarray:
    """Mean per-label uncertainty: items with many labels in doubt come first."""
    return label_uncertainty(p).mean(axis=1)


def max_label_uncertainty(p: np.ndarray) -> np.ndarray:
    """Largest per-label uncertainty: any one label in doubt is worth a look."""
    return label_uncertainty(p).max(axis=1)


def predicted_sets(p: np.ndarray) -> np.ndarray:
    """Indicator rows (n, C) int8 of p >= 0.5, with the most probable label where none is."""
    sets = (p >= 0.5).astype(np.int8)
    empty = sets.sum(axis=1) == 0
    if empty.any():
        sets[np.flatnonzero(empty), p[empty].argmax(axis=1)] = 1
    return sets


def p_set_right(p: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """P(the whole set is right) per row, labels taken as independent: prod of P(each label's
    in/out call is right) (n,)."""
    agree = np.where(sets == 1, p, 1.0 - p)
    return np.asarray(np.prod(np.clip(agree, 1e-6, 1.0), axis=1), dtype=np.float64)
