"""What every simulated system shares: the dataset, the run settings, the simulated human, and
the classifier fit and measurement that turn a labelling state into one curve point.

The human is an oracle that errs at `human_error`, always the same way for one (seed, item),
so every system that asks about an item in one seed hears the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agent.learn.committee import Committee
from agent.learn.strategies import get_strategy
from evals.data import Dataset
from evals.metrics import Point, accuracy


class Predictor(Protocol):
    """What `measure` needs of a classifier: label indices (n,) for vectors (n, d)."""

    def predict(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SimConfig:
    """Run settings, the same for every system and seed of one run."""

    budget: int = 500  # human labels a system may use, in all
    step: int = 25  # human labels per round (batch size)
    init: int = 25  # first labels, the same for every system in a seed
    init_strategy: str = "random"  # random | zeroshot (cold start from label embeddings)
    target: float = 0.95  # corpus accuracy that `human_labels_to_target` waits for
    human_error: float = 0.0  # probability that the simulated human gives a wrong label
    n_members: int = 5  # bootstrap members, for the systems that use disagreement
    use_prior: bool = True  # give the classifier the zero-shot member (label embeddings)
    llm: str | None = None  # annotator spec for the LLM systems, e.g. "simulated:acc=0.8"
    own_word: bool = False  # labelagent gets the target and may stop asking people itself
    estimator: str = "prediction-powered"  # labelagent's routing.estimator (its audits, bound)

    def __post_init__(self) -> None:
        if self.budget < 0 or self.step < 1 or self.init < 0:
            raise ValueError("budget and init must be >= 0, step >= 1")
        if not 0.0 <= self.human_error < 1.0:
            raise ValueError(f"human_error must lie in [0, 1); got {self.human_error}")
        if self.init_strategy not in ("random", "zeroshot"):
            raise ValueError(f"init_strategy must be random or zeroshot; got {self.init_strategy}")


@dataclass(frozen=True)
class SimContext:
    """A dataset plus settings; `memo` keeps per-seed artefacts that several systems share."""

    data: Dataset
    config: SimConfig
    memo: dict[tuple[str, int], Any] = field(default_factory=dict, compare=False)

    @property
    def n_pool(self) -> int:
        return len(self.data.pool)

    @property
    def n_classes(self) -> int:
        return len(self.data.label_set)


@dataclass
class SystemRun:
    """What one system did in one seed: its curve (human labels, corpus acc, test acc), the
    human labels it needed to reach the target (None: never), LLM calls, its own estimate
    of the corpus accuracy {"value", "low", "high"} where it makes one, and where it stopped
    asking people on its own (None: it ran to the budget)."""

    curve: list[Point]
    human_labels_to_target: int | None
    llm_calls: int = 0
    estimated_accuracy: dict[str, float] | None = None
    # Where a system stops on its own word: human labels then and the true corpus accuracy.
    stopped_at: tuple[int, float] | None = None


def human_answers(ctx: SimContext, seed: int) -> np.ndarray:
    """The simulated human's answer (N,) for every pool item in this seed: gold, or with
    probability `human_error` another label drawn uniformly."""
    key = ("human", seed)
    if key not in ctx.memo:
        gold = ctx.data.pool.y
        rng = np.random.default_rng([seed, 1])
        wrong = rng.random(gold.size) < ctx.config.human_error
        shift = rng.integers(1, max(ctx.n_classes, 2), size=gold.size)
        ctx.memo[key] = np.where(wrong, (gold + shift) % ctx.n_classes, gold)
    answers: np.ndarray = ctx.memo[key]
    return answers


def initial_labels(ctx: SimContext, seed: int) -> np.ndarray:
    """Pool rows (init,) that every system labels first in this seed."""
    n = min(ctx.config.init, ctx.n_pool, ctx.config.budget)
    rng = np.random.default_rng([seed, 2])
    everything = np.arange(ctx.n_pool)
    name = "zeroshot" if ctx.config.init_strategy == "zeroshot" else "random"
    pick = get_strategy(name)(
        None, ctx.data.pool.X, everything, n, rng, label_embeddings=ctx.data.label_embeddings
    )
    return np.asarray(pick.indices, dtype=np.int64)


def fit_classifier(
    ctx: SimContext, rows: np.ndarray, labels: np.ndarray, n_members: int, seed: int
) -> Committee:
    """A Committee fitted on pool rows (n,) with labels (n,); zero-shot member if configured."""
    prior = ctx.data.label_embeddings if ctx.config.use_prior else None
    model = Committee(n_members=n_members, random_state=seed)
    return model.fit(ctx.data.pool.X[rows], labels, n_classes=ctx.n_classes, prior_embeddings=prior)


def measure(ctx: SimContext, human_labels: int, corpus: np.ndarray, model: Predictor) -> Point:
    """One curve point: human labels spent, accuracy of the corpus labels (N,) against gold,
    and the classifier's accuracy on the test split."""
    test_pred = model.predict(ctx.data.test.X)
    return (
        int(human_labels),
        round(accuracy(corpus, ctx.data.pool.y), 5),
        round(accuracy(test_pred, ctx.data.test.y), 5),
    )
