"""Baselines with an LLM annotator: the LLM labels the whole pool, people review some of it.

The LLM is the real labelling path (`agent.labeller.labeller.Labeller`) over an evaluation annotator
from `agent.llm.annotators` (simulated at a chosen accuracy, or a replay of real labels); its
answers are deterministic per (seed, text), so every system in one seed sees the same LLM.
Systems differ only in the order in which people review items:

- `llm-all`: no review; abstains get the classifier's prediction.
- `llm-random-review`: uniform random order; the reviews double as an audit, so it estimates
  the corpus accuracy with an interval.
- `llm-confidence`: least confident LLM answers first (CoAnnotating-style routing).
- `oracle-router`: exactly the LLM's wrong answers first: the limit no router can beat.

The classifier learns from the corpus labels and fills the LLM's abstains. It sees the whole
pool, so it is refitted only at about REFITS evenly spaced curve points (and the last); each
point reports the test accuracy of the classifier in use there. `human_labels_to_target` is
exact (label by label, with the classifier in use), not rounded up to a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from agent.config import LLMConfig
from agent.errors import ConfigError
from agent.labeller.labeller import Labeller
from agent.llm.annotators import ReplayLLM, SimulatedLLM, make_annotator
from agent.routing.accuracy import Stratum, estimate_accuracy
from agent.types import Item, text_hash
from evals.content_llm import PREFIX as CONTENT
from evals.content_llm import content_backend
from evals.metrics import Point, corpus_labels
from evals.sim import SimContext, SystemRun, fit_classifier, human_answers, measure

REFITS = 5  # classifier fits per review curve, besides the last point
ABSTAIN = -1


@dataclass(frozen=True)
class LLMView:
    """The LLM's answer for every pool item: labels (N,) int64 (ABSTAIN = -1), confidence (N,)
    in [0, 1], and the calls it took."""

    labels: np.ndarray
    confidence: np.ndarray
    calls: int


def seeded_spec(spec: str | None, seed: int) -> str:
    """The annotator spec for one run seed: a simulated LLM without its own seed gets `seed`."""
    if not spec:
        raise ConfigError("LLM systems need an annotator: --llm simulated[:acc=X] or replay:PATH")
    if spec.startswith(("simulated:", CONTENT)) and "seed=" not in spec:
        return f"{spec},seed={seed}"
    return spec


def class_centroids(ctx: SimContext) -> np.ndarray:
    """Mean pool embedding per gold class (C, d): where a simulated LLM's errors go (classes
    that sit close in embedding space are confused more often)."""
    pool = ctx.data.pool
    out = np.zeros((ctx.n_classes, pool.X.shape[1]), dtype=np.float32)
    for c in np.unique(pool.y):
        out[c] = pool.X[pool.y == c].mean(axis=0)
    return out


def make_llm_backend(ctx: SimContext, seed: int) -> SimulatedLLM | ReplayLLM:
    # content:... answers follow the text (evals/content_llm.py); simulated:... are flat
    """The evaluation LLM (a ChatBackend) of this seed. Every LLM system, `labelagent`
    included, should ask this one, so that all of them hear the same answers per item."""
    spec = seeded_spec(ctx.config.llm, seed)
    if spec.startswith(CONTENT):
        return content_backend(ctx, spec)
    names = ctx.data.label_set.names
    gold = {text: names[y] for text, y in zip(ctx.data.pool.texts, ctx.data.pool.y)}
    return make_annotator(spec, ctx.data.label_set, gold, class_centroids(ctx))


def llm_view(ctx: SimContext, seed: int) -> LLMView:
    """The LLM's labels for the whole pool in this seed, computed once and shared by systems."""
    key = ("llm", seed)
    if key not in ctx.memo:
        backend = make_llm_backend(ctx, seed)
        labeller = Labeller(
            backend, ctx.data.label_set, LLMConfig(model=backend.model, few_shot_k=0), cache=None
        )
        items = [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(ctx.data.pool.texts)]
        decisions = labeller.label_items_sync(items)
        labels = np.array(
            [ABSTAIN if d.label is None else ctx.data.label_set.index(d.label) for d in decisions],
            dtype=np.int64,
        )
        confidence = np.array([d.confidence for d in decisions], dtype=np.float64)
        ctx.memo[key] = LLMView(labels, confidence, labeller.stats.calls)
    view: LLMView = ctx.memo[key]
    return view


def review_order(ctx: SimContext, seed: int, view: LLMView, policy: str) -> np.ndarray:
    """Pool rows (N,) in the order people review them under `policy`; ties fall at random."""
    rng = np.random.default_rng([seed, 4])
    noise = rng.random(ctx.n_pool)
    if policy == "random":
        return np.argsort(noise, kind="stable")
    if policy == "confidence":  # abstains first, then the least confident answers
        key = np.where(view.labels == ABSTAIN, -1.0, view.confidence)
    elif policy == "oracle":  # the LLM's wrong answers (and abstains) first
        key = (view.labels == ctx.data.pool.y).astype(np.float64)
    else:
        raise ValueError(f"unknown review policy {policy!r}")
    return np.lexsort((noise, key))


def review_system(ctx: SimContext, seed: int, policy: str | None) -> SystemRun:
    """The LLM labels the pool; people review `step` items at a time in the `policy` order, up
    to the budget (policy None: nobody reviews). Corpus = human answer where reviewed, else
    the LLM's label, else (abstain) the classifier's prediction."""
    view, answers, gold = llm_view(ctx, seed), human_answers(ctx, seed), ctx.data.pool.y
    budget = 0 if policy is None else min(ctx.config.budget, ctx.n_pool)
    order = review_order(ctx, seed, view, policy or "random")
    grid = sorted({0, *range(ctx.config.step, budget + 1, ctx.config.step), budget})
    refit_every = max(1, -(-len(grid) // REFITS))
    curve: list[Point] = []
    to_target: int | None = None
    for idx, h in enumerate(grid):
        labels = corpus_labels(view.labels, order[:h], answers[order[:h]])
        if idx % refit_every == 0 or idx == len(grid) - 1:
            known = np.flatnonzero(labels != ABSTAIN)
            model = fit_classifier(ctx, known, labels[known], 0, seed)
        base = view.labels.copy()
        gaps = base == ABSTAIN
        if gaps.any():
            base[gaps] = model.predict(ctx.data.pool.X[gaps])
        curve.append(measure(ctx, h, corpus_labels(base, order[:h], answers[order[:h]]), model))
        if to_target is None:
            stop = grid[idx + 1] if idx + 1 < len(grid) else h
            to_target = first_reaching(base, answers, gold, order, h, stop, ctx.config.target)
    estimate = None
    if policy == "random":
        estimate = random_review_estimate(view, answers, order[:budget], base)
    return SystemRun(curve, to_target, view.calls, estimate)


def first_reaching(
    base: np.ndarray, answers: np.ndarray, gold: np.ndarray, order: np.ndarray,
    start: int, stop: int, target: float,
) -> int | None:
    """Smallest h in [start, stop] at which the corpus `base` (N,) with the first h items of
    `order` set to the human answers reaches accuracy `target`; None if none does."""
    labels = corpus_labels(base, order[:start], answers[order[:start]])
    correct = int(np.sum(labels == gold))
    step_rows = order[start:stop]
    gains = (answers[step_rows] == gold[step_rows]).astype(np.int64) - (
        labels[step_rows] == gold[step_rows]
    )
    running = correct + np.concatenate([[0], np.cumsum(gains)])
    hits = np.flatnonzero(running >= target * gold.size)
    return int(start + hits[0]) if hits.size else None


def random_review_estimate(
    view: LLMView, answers: np.ndarray, reviewed: np.ndarray, base: np.ndarray
) -> dict[str, float]:
    """Corpus accuracy with a 95 % interval from uniformly random reviews: human labels taken
    as right (an assumption, stated), LLM labels and classifier-filled abstains each audited
    by the reviews that fell on them (a uniform sample of each stratum)."""
    seen = np.zeros(view.labels.size, dtype=bool)
    seen[reviewed] = True
    abstain = view.labels == ABSTAIN
    strata = {"human": Stratum(int(seen.sum()), assumed=1.0)}
    for name, rows in (("llm", ~abstain), ("classifier", abstain)):
        checked = rows & seen
        strata[name] = Stratum(
            size=int(np.sum(rows & ~seen)),
            checked=int(checked.sum()),
            correct=int(np.sum(base[checked] == answers[checked])),
        )
    return estimate_accuracy(strata).to_json()


LLM_SYSTEMS = {
    "llm-all": partial(review_system, policy=None),
    "llm-random-review": partial(review_system, policy="random"),
    "llm-confidence": partial(review_system, policy="confidence"),
    "oracle-router": partial(review_system, policy="oracle"),
}
