"""The classifier committee: multinomial logistic regression on embeddings plus bootstrap members.

The main member gives the probabilities that drive selection and labelling; K members fitted on
stratified bootstrap resamples give the disagreement that committee strategies need. Classes with
no labels yet keep a small Dirichlet-style mass, and an optional zero-shot member (cosine to the
label descriptions' embeddings) gives them an item-dependent score that fades as labels arrive.
Scoring is batched float32 matrix algebra, so a 1,000,000 x 384 pool needs no float64 copy.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

_BATCH = 65_536


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in place on a float32 array (..., C); returns it."""
    if z.shape[-1] == 0:
        return z
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """Rows of `a` (n, d) as float32 with unit L2 norm (zero rows stay zero)."""
    a = np.asarray(a, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", a, a))[:, None]
    unit: np.ndarray = a / np.maximum(norms, np.float32(1e-12))
    return unit


def zero_shot_proba(
    X: np.ndarray, label_emb: np.ndarray, temperature: float = 0.05, batch_size: int = _BATCH
) -> np.ndarray:
    """Softmax over labels of cosine(X (n, d), label_emb (C, d)) / temperature -> (n, C) float32."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    labels = _unit_rows(label_emb)
    if X.ndim != 2 or X.shape[1] != labels.shape[1]:
        raise ValueError(f"X has shape {X.shape}, label embeddings {labels.shape}: d must match")
    out = np.empty((X.shape[0], labels.shape[0]), dtype=np.float32)
    scale = np.float32(1.0 / temperature)
    for start in range(0, X.shape[0], batch_size):
        sims = _unit_rows(X[start : start + batch_size]) @ labels.T
        sims *= scale
        out[start : start + batch_size] = _softmax_rows(sims)
    return out


def _stratified_bootstrap(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a bootstrap resample of `y` (n,) that keeps each class's count, so every
    labelled class is present in every member."""
    parts = []
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        parts.append(rng.choice(rows, size=rows.size, replace=True))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


class Committee(BaseEstimator):  # type: ignore[misc]
    """Logistic-regression committee over a fixed label set of `n_classes` (sklearn conventions).

    Parameters: `n_members` bootstrap members; `C`, `class_weight`, `max_iter` for each logistic
    regression; `alpha` pseudo-count per class that keeps mass on classes without labels;
    `prior_strength` how many labels the zero-shot member is worth; `temperature` of that member.
    """

    def __init__(
        self,
        n_members: int = 5,
        C: float = 10.0,
        class_weight: str | None = "balanced",
        alpha: float = 0.1,
        prior_strength: float = 10.0,
        temperature: float = 0.05,
        max_iter: int = 300,
        batch_size: int = _BATCH,
        random_state: int | None = None,
    ) -> None:
        self.n_members = n_members
        self.C = C
        self.class_weight = class_weight
        self.alpha = alpha
        self.prior_strength = prior_strength
        self.temperature = temperature
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        n_classes: int | None = None,
        prior_embeddings: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> Committee:
        """Fit on X (n, d) and label indices y (n,) in [0, n_classes); any class may be unlabelled.

        `prior_embeddings` (n_classes, d), the label descriptions' embeddings, adds the zero-shot
        member. `sample_weight` (n,) weighs rows (a person's label above an LLM's); the zero-shot
        member fades with the total weight. n may be 0: the committee then gives the prior (or
        uniform) probabilities.
        """
        X, y, n_classes = self._check_fit_input(X, y, n_classes, prior_embeddings)
        weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weight is not None and weight.shape != y.shape:
            raise ValueError(f"sample_weight {weight.shape} must match y {y.shape}")
        mass = float(y.size if weight is None else weight.sum())
        self.n_classes_ = n_classes
        self.classes_ = np.arange(n_classes)
        self.n_features_in_ = X.shape[1]
        self.seen_classes_ = np.unique(y)
        self.n_labels_ = int(y.size)
        unseen = n_classes - self.seen_classes_.size
        self.unseen_mass_ = unseen * self.alpha / (mass + n_classes * self.alpha)
        self.prior_embeddings_ = None if prior_embeddings is None else _unit_rows(prior_embeddings)
        self.prior_weight_ = 0.0
        if self.prior_embeddings_ is not None:
            self.prior_weight_ = self.prior_strength / (self.prior_strength + mass)
        local = np.searchsorted(self.seen_classes_, y)
        self.coef_, self.intercept_ = self._fit_member(X, local, weight)
        rng = np.random.default_rng(self.random_state)
        coefs, intercepts = [], []
        for _ in range(self.n_members):
            rows = _stratified_bootstrap(local, rng)
            coef, intercept = self._fit_member(
                X[rows], local[rows], None if weight is None else weight[rows]
            )
            coefs.append(coef)
            intercepts.append(intercept)
        dim, n_seen = X.shape[1], self.seen_classes_.size
        self.members_coef_ = np.stack(coefs) if coefs else np.zeros((0, n_seen, dim), np.float32)
        self.members_intercept_ = (
            np.stack(intercepts) if intercepts else np.zeros((0, n_seen), np.float32)
        )
        return self

    def _check_fit_input(
        self, X: np.ndarray, y: np.ndarray, n_classes: int | None, prior: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Validate shapes and ranges; returns X float32 (n, d), y int64 (n,), n_classes."""
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64).reshape(-1)
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (n, d) with n == len(y); got {X.shape} and {y.shape}")
        if n_classes is None:
            if prior is not None:
                n_classes = int(np.shape(prior)[0])
            elif y.size:
                n_classes = int(y.max()) + 1
            else:
                raise ValueError("n_classes is needed when y is empty and there is no prior")
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes}); got {y.min()}..{y.max()}")
        if prior is not None and np.shape(prior) != (n_classes, X.shape[1]):
            raise ValueError(
                f"prior_embeddings must be ({n_classes}, {X.shape[1]}); got {np.shape(prior)}"
            )
        if self.n_members < 0 or self.alpha <= 0 or self.temperature <= 0:
            raise ValueError("n_members must be >= 0, alpha and temperature > 0")
        return X, y, n_classes

    def _fit_member(
        self, X: np.ndarray, local: np.ndarray, weight: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One logistic regression over the seen classes -> coef (S, d), intercept (S,) float32.

        With fewer than two seen classes there is nothing to separate: zero weights (constant).
        """
        n_seen = self.seen_classes_.size
        if n_seen < 2:
            return np.zeros((n_seen, X.shape[1]), np.float32), np.zeros(n_seen, np.float32)
        lr = LogisticRegression(
            C=self.C,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        # Labelled sets are small: extra BLAS/OpenMP threads gain little and, on a busy machine,
        # their spin-waits made each fit 10-30x slower (measured on 2 shared cores).
        with threadpool_limits(limits=1), warnings.catch_warnings():
            # "more unique classes than half the samples" is the normal state of a cold start
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            lr.fit(X, local, sample_weight=weight)
        coef, intercept = lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32)
        if n_seen == 2:  # binary fit: p(1) = sigmoid(w.x + b) == softmax([0, w.x + b])[1]
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([np.zeros(1, np.float32), intercept])
        return coef, intercept

    def _expand(self, seen_proba: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
        """Map probabilities over seen classes (b, ..., S) onto the full label set (b, ..., C),
        then mix in the zero-shot member's prior (b, ..., C) when there is one."""
        n_unseen = self.n_classes_ - self.seen_classes_.size
        if n_unseen == 0:
            full = seen_proba  # every class labelled: the columns already line up
        else:
            shape = (*seen_proba.shape[:-1], self.n_classes_)
            full = np.full(shape, self.unseen_mass_ / n_unseen, dtype=np.float32)
            full[..., self.seen_classes_] = seen_proba * np.float32(1.0 - self.unseen_mass_)
        if prior is not None:
            w = np.float32(self.prior_weight_)
            full *= 1 - w
            full += w * prior
        return full

    def _batches(self, X: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray | None]]:
        """Yield (slice, X batch float32 (b, d), zero-shot probs (b, C) or None)."""
        for start in range(0, X.shape[0], self.batch_size):
            rows = slice(start, start + self.batch_size)
            Xb = np.asarray(X[rows], dtype=np.float32)
            prior = None
            if self.prior_embeddings_ is not None:
                prior = zero_shot_proba(Xb, self.prior_embeddings_, self.temperature)
            yield rows, Xb, prior

    def _check_fitted(self, X: np.ndarray) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this Committee is not fitted yet; call fit first")
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must be (n, {self.n_features_in_}); got {X.shape}")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Main member's probabilities over the whole label set: X (n, d) -> (n, C) float32."""
        self._check_fitted(X)
        out = np.empty((X.shape[0], self.n_classes_), dtype=np.float32)
        for rows, Xb, prior in self._batches(X):
            logits = Xb @ self.coef_.T
            logits += self.intercept_
            out[rows] = self._expand(_softmax_rows(logits), prior)
        return out

    def member_proba(self, X: np.ndarray) -> np.ndarray:
        """Each bootstrap member's probabilities: X (n, d) -> (K, n, C) float32."""
        self._check_fitted(X)
        n_members, n_seen, dim = self.members_coef_.shape
        out = np.empty((n_members, X.shape[0], self.n_classes_), dtype=np.float32)
        stacked = self.members_coef_.reshape(n_members * n_seen, dim)
        bias = self.members_intercept_.reshape(n_members * n_seen)
        for rows, Xb, prior in self._batches(X):
            logits = Xb @ stacked.T  # (b, K*S): one GEMM for all members
            logits += bias
            proba = _softmax_rows(logits.reshape(Xb.shape[0], n_members, n_seen))
            full = self._expand(proba, None if prior is None else prior[:, None, :])
            out[:, rows] = full.transpose(1, 0, 2)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable label index per row: X (n, d) -> (n,) int64."""
        self._check_fitted(X)
        out = np.empty(X.shape[0], dtype=np.int64)
        for start in range(0, X.shape[0], self.batch_size):
            rows = slice(start, start + self.batch_size)
            out[rows] = self.predict_proba(X[rows]).argmax(axis=1)
        return out
