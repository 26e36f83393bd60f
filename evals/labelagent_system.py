"""The `labelagent` system in the simulation: the real session, router and batch job, in memory.

The product's own loop runs unchanged: the session selects, the real Labeller asks the
simulated (or replayed) LLM through the ChatBackend protocol, the router decides, and the
simulated human answers the review queue, `step` labels per round, most valuable first.
Embeddings come precomputed from the dataset, through an embedder that looks them up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.config import LLMConfig, ProjectConfig, RoutingConfig
from agent.labeller.labeller import Labeller
from agent.loop.job import JobLimits, run_job
from agent.loop.llm_setup import NO_LLM
from agent.loop.pool import label_texts
from agent.loop.session import LabelingSession
from agent.loop.target import CONFIRMED
from agent.types import Item, QueueEntry
from evals.llm_systems import make_llm_backend, seeded_spec
from evals.metrics import Point, human_labels_to_target
from evals.sim import SimContext, SystemRun, human_answers, measure


class LookupEmbedder:
    """An embedder over vectors computed earlier: text -> its row. Unknown texts are an error."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray, name: str) -> None:
        self._rows = {t: i for i, t in enumerate(texts)}
        self._vectors = np.asarray(vectors, dtype=np.float32)
        self._name = f"precomputed:{name}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._vectors[[self._rows[t] for t in texts]]


def _embedder(ctx: SimContext) -> LookupEmbedder:
    data = ctx.data
    names = label_texts(data.label_set)
    return LookupEmbedder(
        list(data.pool.texts) + names,
        np.vstack([data.pool.X, data.label_embeddings]),
        data.embedder,
    )


def labelagent_system(ctx: SimContext, seed: int) -> SystemRun:
    """Rounds of the batch job until the human budget is spent or the job confirms the
    target on its own word (a uniform audit's lower bound); a curve point per round.

    The first round sends the LLM every item (a fresh classifier can settle none); people
    answer half a `step` per round, so the classifier retrains and re-ranks the queue often.
    With `--llm none` no LLM is asked: the zero-shot member stands in for it, as in
    `labelagent run --llm none`.
    """
    cfg, data = ctx.config, ctx.data
    no_llm = cfg.llm in (None, NO_LLM)  # `--llm none`: people, the classifier, zero-shot
    spec = None if no_llm else seeded_spec(cfg.llm, seed)
    config = ProjectConfig(
        seed=seed, batch_size=ctx.n_pool, committee_size=cfg.n_members,
        llm=LLMConfig(model=spec, few_shot_k=0, concurrency=64),
        routing=RoutingConfig(target_precision=cfg.target, estimator=cfg.estimator),
    )
    session = LabelingSession.from_texts(
        data.pool.texts, data.label_set, config=config, embedder=_embedder(ctx)
    )
    names = data.label_set.names
    labeller = None
    if not no_llm:
        session.backend = make_llm_backend(ctx, seed)  # the same answers the baselines hear
        labeller = Labeller(session.backend, data.label_set, config.llm, session.store)
    answers = human_answers(ctx, seed)
    exact = ExactCount(ctx, session, answers)

    def oracle(item: Item, entry: QueueEntry) -> str:
        exact.answer(int(item.id))  # from_texts ids are pool rows: exact for duplicates
        return names[answers[int(item.id)]]

    def on_event(_kind: str, _data: object) -> None:
        curve.append(_point(ctx, session))
        exact.new_round()

    curve: list[Point] = [_point(ctx, session)]
    # With `own_word` the job gets the target and may stop itself (see agent.loop.target);
    # without, it runs to the budget and the curve says when it reached the target.
    target = cfg.target if cfg.own_word else None
    limits = JobLimits(rounds=None, batch_size=config.batch_size, human_budget=cfg.budget,
                       target_accuracy=target, human_per_round=max(1, cfg.step // 2))
    report = run_job(session, limits, labeller, oracle, on_event=on_event)
    estimate = session.store.get_meta("estimated_accuracy")
    stopped = (curve[-1][0], curve[-1][1]) if report.stop_reason.startswith(CONFIRMED) else None
    return SystemRun(curve, _first(human_labels_to_target(curve, cfg.target), exact.hit),
                     int(session.store.cache_totals()["calls"]), estimate, stopped)


class ExactCount:
    """Human labels to target counted label by label, as the baselines count them
    (`first_reaching`): inside a round each answer replaces the best guess it was shown
    against (the guess of the round's start), so a round that reaches the target halfway
    counts its answers up to there, not the whole round."""

    def __init__(self, ctx: SimContext, session: LabelingSession, answers: np.ndarray) -> None:
        self.ctx, self.session, self.answers = ctx, session, answers
        self.labels: np.ndarray | None = None  # corpus labels as answers come in (N,)
        self.humans = 0
        self.hit: int | None = None

    def new_round(self) -> None:
        """The next answer is judged against a fresh best guess."""
        self.labels = None

    def answer(self, row: int) -> None:
        """Record the answer on pool row `row`; note the label count once the corpus, with
        the answers so far, reaches the target."""
        if self.labels is None:
            self.labels = self.session.best_guess().copy()
            self.humans = int(self.session.pool.human_mask.sum())
        self.labels[row] = self.answers[row]
        self.humans += 1
        gold = self.ctx.data.pool.y
        if self.hit is None and np.mean(self.labels == gold) >= self.ctx.config.target:
            self.hit = self.humans


def _first(a: int | None, b: int | None) -> int | None:
    """The smaller of two label counts, either of which may be None (never reached)."""
    return min((x for x in (a, b) if x is not None), default=None)


def _point(ctx: SimContext, session: LabelingSession) -> Point:
    """Human labels so far, corpus accuracy of the session's best guess for every item."""
    session.reload_labels()
    humans = int(session.pool.human_mask.sum())
    return measure(ctx, humans, session.best_guess(), session.committee)
