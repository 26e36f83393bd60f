"""The `posterior-router` baseline (issue 20): trust in the LLM earned on random audits only.

The LLM labels the whole pool (`llm_view`, shared with the other LLM systems). The first
`init` human labels are the shared random first labels (`initial_labels`); the LLM's accuracy
`a` is measured on those alone, add-one smoothed ((right + 1) / (answered + 2)), and never
again: later reviews are chosen for doubt, so they would bias it. Each round:

1. A plain logistic regression (sklearn defaults: C=1, no class weights; the same embeddings
   as every other system, no zero-shot member) learns from the human answers (sample weight
   5) and the LLM's labels on every other answered item (weight ((K·a − 1)/(K − 1))², 0 when
   a ≤ 1/K; K classes). The rows it trains on get 5-fold
   cross-fitted (out-of-fold) probabilities, so an item's own LLM label never reaches its
   own classifier probability; the rest (abstains) get the full fit's.
2. Each unreviewed item's label is the argmax of the posterior that combines the classifier's
   probability p(c) with the LLM trusted at accuracy a: P(LLM says l | true c) = a if c == l
   else (1 − a)/(K − 1); an abstain leaves p alone. Reviewed items carry the human answer.
3. People review the `step` least sure unreviewed items (1 − max posterior); repeat to the budget.

One curve point per round (after its refit). `human_labels_to_target` is exact, label by
label: inside a round the reviews are taken in their queue order against that round's
labels (the refit comes at the round's end), as `oracle-router` does. LLM calls = the pool's
distinct texts (the LLM labels everything up front). Six fits per round at most (one when
the LLM's weight is 0), BLAS held to one thread as in `Committee._fit_member`.

Why not `Committee`: its C=10 and balanced class weights needed more labels here (on babe with
GPT-4's zero-shot labels, 2 seeds: 692 with Committee's settings, 571 with C=1 and the
zero-shot member, 490 with this plain fit); the baseline is meant to be the simple strong one.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from evals.llm_systems import ABSTAIN, LLMView, first_reaching, llm_view
from evals.metrics import Point, corpus_labels
from evals.sim import SimContext, SystemRun, human_answers, initial_labels, measure

HUMAN_WEIGHT = 5.0  # sample weight of a person's label
FOLDS = 5  # cross-fitting folds for the rows the classifier trains on
SMOOTH = 1e-3  # share of uniform mass in every classifier probability


def llm_accuracy(view: LLMView, rows: np.ndarray, answers: np.ndarray) -> float:
    """Add-one smoothed share of the LLM's answers at `rows` that match the human answers
    (abstains are not counted as answers)."""
    said = view.labels[rows]
    answered = said != ABSTAIN
    right = int(np.sum(said[answered] == answers[rows][answered]))
    return (right + 1.0) / (int(answered.sum()) + 2.0)


def llm_weight(a: float, n_classes: int) -> float:
    """Training weight of one LLM label: ((K·a − 1)/(K − 1))², 0 at or below chance."""
    k = max(n_classes, 2)
    return float(max(0.0, (k * a - 1.0) / (k - 1.0)) ** 2)


def llm_likelihood(view: LLMView, a: float, n_classes: int) -> np.ndarray:
    """P(the LLM's answer | true class c) per item (N, C): a on its label, (1 − a)/(K − 1)
    elsewhere; all ones where it abstained."""
    k = max(n_classes, 2)
    out = np.full((view.labels.size, n_classes), (1.0 - a) / (k - 1.0))
    answered = np.flatnonzero(view.labels != ABSTAIN)
    out[answered, view.labels[answered]] = a
    out[view.labels == ABSTAIN] = 1.0
    return out


class Classifier:
    """A weighted logistic regression (sklearn defaults, C=1) over the whole label set: classes
    without training rows keep a little mass (SMOOTH), so the LLM can still name them."""

    def __init__(self, n_classes: int, seed: int) -> None:
        self.n_classes = n_classes
        self.seed = seed
        self.seen = np.empty(0, dtype=np.int64)
        self.lr: LogisticRegression | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> Classifier:
        """Fit on X (n, d), labels y (n,) in [0, K), sample weights w (n,); n may be 0."""
        self.seen = np.unique(y)
        if self.seen.size >= 2:
            self.lr = LogisticRegression(max_iter=300, random_state=self.seed)
            with threadpool_limits(limits=1):  # as Committee._fit_member: 1 thread is fastest
                self.lr.fit(X, y, sample_weight=w)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (n, K) float64, each row smoothed toward uniform by SMOOTH."""
        out = np.zeros((X.shape[0], self.n_classes))
        if self.lr is not None:
            out[:, self.lr.classes_] = self.lr.predict_proba(X)
        elif self.seen.size == 1:
            out[:, self.seen[0]] = 1.0
        else:
            out[:] = 1.0 / self.n_classes
        return (1.0 - SMOOTH) * out + SMOOTH / self.n_classes

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class (n,) per row."""
        return self.predict_proba(X).argmax(axis=1)


def _fit(ctx: SimContext, rows: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> Classifier:
    """A Classifier fitted on pool rows (n,) with labels y (n,) and sample weights w (n,)."""
    return Classifier(ctx.n_classes, seed).fit(ctx.data.pool.X[rows], y, w)


def classifier_proba(
    ctx: SimContext, seed: int, rows: np.ndarray, y: np.ndarray, w: np.ndarray,
    cross_fit: np.ndarray,
) -> tuple[np.ndarray, Classifier]:
    """Pool probabilities (N, C) of a classifier trained on (rows, y, w), out-of-fold for the
    training rows flagged in `cross_fit`; and the full fit (for the test split)."""
    full = _fit(ctx, rows, y, w, seed)
    probs = full.predict_proba(ctx.data.pool.X).astype(np.float64)
    if not cross_fit.any():
        return probs, full
    fold = np.random.default_rng([seed, 5, rows.size]).permutation(rows.size) % FOLDS
    for k in range(FOLDS):
        held = (fold == k) & cross_fit
        if held.any():
            keep = fold != k
            model = _fit(ctx, rows[keep], y[keep], w[keep], seed)
            probs[rows[held]] = model.predict_proba(ctx.data.pool.X[rows[held]])
    return probs, full


def round_state(
    ctx: SimContext, seed: int, view: LLMView, labelled: np.ndarray, a: float
) -> tuple[np.ndarray, np.ndarray, Classifier]:
    """One refit: the corpus labels (N,) (human answers where reviewed, posterior argmax
    elsewhere), each item's doubt 1 − max posterior (N,), and the full classifier."""
    answers = human_answers(ctx, seed)
    reviewed = np.zeros(ctx.n_pool, dtype=bool)
    reviewed[labelled] = True
    weight = llm_weight(a, ctx.n_classes)
    from_llm = np.flatnonzero(~reviewed & (view.labels != ABSTAIN)) if weight > 0 else labelled[:0]
    rows = np.concatenate([labelled, from_llm])
    y = np.concatenate([answers[labelled], view.labels[from_llm]])
    w = np.concatenate([np.full(labelled.size, HUMAN_WEIGHT), np.full(from_llm.size, weight)])
    cross_fit = np.concatenate([np.zeros(labelled.size, bool), np.ones(from_llm.size, bool)])
    probs, model = classifier_proba(ctx, seed, rows, y, w, cross_fit)
    post = probs * llm_likelihood(view, a, ctx.n_classes)
    post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-300)
    corpus = corpus_labels(post.argmax(axis=1), labelled, answers[labelled])
    doubt = 1.0 - post.max(axis=1)
    return corpus, doubt, model


def next_batch(doubt: np.ndarray, labelled: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The n least sure unreviewed rows, most doubtful first; ties fall at random."""
    candidates = np.setdiff1d(np.arange(doubt.size), labelled, assume_unique=True)
    noise = np.random.default_rng([seed, 6, labelled.size]).random(candidates.size)
    order = np.lexsort((noise, -doubt[candidates]))
    return candidates[order[:n]]


def posterior_router(ctx: SimContext, seed: int) -> SystemRun:
    """Rounds of refit, posterior labels and review of the least sure, up to the budget."""
    cfg, gold = ctx.config, ctx.data.pool.y
    view, answers = llm_view(ctx, seed), human_answers(ctx, seed)
    limit = min(cfg.budget, ctx.n_pool)
    labelled = np.empty(0, dtype=np.int64)
    a = llm_accuracy(view, labelled, answers)
    curve: list[Point] = []
    to_target: int | None = None
    while True:
        corpus, doubt, model = round_state(ctx, seed, view, labelled, a)
        curve.append(measure(ctx, labelled.size, corpus, model))
        room = limit - labelled.size
        init_round = labelled.size == 0 and cfg.init > 0 and room > 0
        if init_round:
            new = initial_labels(ctx, seed)
        else:
            new = next_batch(doubt, labelled, min(cfg.step, max(room, 0)), seed)
        if to_target is None:
            hit = first_reaching(corpus, answers, gold, new, 0, new.size, cfg.target)
            to_target = None if hit is None else labelled.size + hit
        if room <= 0:
            break
        labelled = np.concatenate([labelled, new.astype(np.int64)])
        if init_round:  # the random first labels: the only unbiased audit of the LLM
            a = llm_accuracy(view, labelled, answers)
    return SystemRun(curve, to_target, view.calls)
