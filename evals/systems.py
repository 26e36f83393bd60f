"""The systems a simulation compares, in one registry: name -> function(context, seed) -> run.

Human-only active learning (`random`, `margin`, `entropy`, `hybrid`, `coreset`, `committee`,
...) is one loop over a query strategy: fit the classifier, record a curve point, let the
strategy pick the next batch, ask the simulated human, repeat until the budget is spent.
`best-human-only` takes, per seed, the best of several of them: the limit without an LLM.
The LLM baselines (`llm-all`, `llm-random-review`, `llm-confidence`, `oracle-router`) live in
`evals/llm_systems.py`, the `posterior-router` baseline in `evals/posterior_router.py`.
Adding a system is one `SystemFn` and one line in SYSTEMS.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from agent.errors import ConfigError
from agent.learn.strategies import get_strategy
from evals.labelagent_system import labelagent_system
from evals.llm_systems import LLM_SYSTEMS
from evals.metrics import Point, corpus_labels, human_labels_to_target
from evals.posterior_router import posterior_router
from evals.sim import (
    SimContext,
    SystemRun,
    fit_classifier,
    human_answers,
    initial_labels,
    measure,
)

SystemFn = Callable[[SimContext, int], SystemRun]

# Simulated LLM accuracy per dataset, for a bare `--llm simulated`.
# Approximate zero/few-shot accuracy of GPT-3.5/4-class models in published reports; see
# evals/RESULTS.md for the wording. Not precise citations: ranges, rounded.
LLM_ACCURACY: dict[str, float] = {
    "ag_news": 0.88,  # topic classification; zero-shot reports mostly 0.85-0.90
    "trec": 0.80,  # coarse question types; zero-shot reports about 0.75-0.85
    "trec_fine": 0.60,  # 50 fine question types; markedly lower than coarse
    "banking77": 0.80,  # Refuel's LLM labelling benchmark: about 0.80-0.82 for GPT-4-class
    "sms_spam": 0.95,  # spam vs ham; zero-shot reports about 0.90-0.97
    "emotion": 0.60,  # six emotions, noisy gold; zero-shot reports about 0.55-0.65
    "sst2": 0.92,  # binary sentiment; zero-shot reports about 0.90-0.95
}


def active_learning(ctx: SimContext, seed: int, strategy: str, members: bool = False) -> SystemRun:
    """Human-only active learning with `strategy`; bootstrap members only where it needs them."""
    cfg, pool_x = ctx.config, ctx.data.pool.X
    answers = human_answers(ctx, seed)
    select = get_strategy(strategy)
    rng = np.random.default_rng([seed, 3])
    n_members = cfg.n_members if members else 0
    limit = min(cfg.budget, ctx.n_pool)
    labelled = np.empty(0, dtype=np.int64)
    curve: list[Point] = []
    while True:
        model = fit_classifier(ctx, labelled, answers[labelled], n_members, seed)
        probs = model.predict_proba(pool_x)
        corpus = corpus_labels(probs.argmax(axis=1), labelled, answers[labelled])
        curve.append(measure(ctx, labelled.size, corpus, model))
        room = limit - labelled.size
        if room <= 0:
            break
        if labelled.size == 0 and cfg.init > 0:
            new = initial_labels(ctx, seed)
        else:
            candidates = np.setdiff1d(np.arange(ctx.n_pool), labelled, assume_unique=True)
            extra = {
                "labelled": labelled,
                "label_embeddings": ctx.data.label_embeddings,
                "member_probs": model.member_proba(pool_x) if n_members else None,
            }
            new = select(probs, pool_x, candidates, min(cfg.step, room), rng, **extra).indices
        labelled = np.concatenate([labelled, np.asarray(new, dtype=np.int64)])
    return SystemRun(curve, human_labels_to_target(curve, cfg.target))


HUMAN_ONLY_BEST_OF = ("margin", "entropy", "least-confidence", "hybrid")


def best_human_only(ctx: SimContext, seed: int) -> SystemRun:
    """The honest limit without an LLM: per seed, whichever of the human-only strategies in
    HUMAN_ONLY_BEST_OF reached the target with the fewest labels (else the best final corpus
    accuracy). It knows the answer afterwards, so no real system can choose like this."""
    runs = [active_learning(ctx, seed, strategy=name.replace("-", "_"))
            for name in HUMAN_ONLY_BEST_OF]

    def cost(run: SystemRun) -> tuple[float, float]:
        to_target = run.human_labels_to_target
        return (float("inf") if to_target is None else to_target, -run.curve[-1][1])

    return min(runs, key=cost)


SYSTEMS: dict[str, SystemFn] = {
    "random": partial(active_learning, strategy="random"),
    "margin": partial(active_learning, strategy="margin"),
    "entropy": partial(active_learning, strategy="entropy"),
    "least-confidence": partial(active_learning, strategy="least_confidence"),
    "hybrid": partial(active_learning, strategy="hybrid"),
    "coreset": partial(active_learning, strategy="coreset"),
    "kmeans": partial(active_learning, strategy="kmeans"),
    "committee": partial(active_learning, strategy="kl_consensus", members=True),
    "vote-entropy": partial(active_learning, strategy="vote_entropy", members=True),
    **LLM_SYSTEMS,
    "posterior-router": posterior_router,
    "llm-cv-router": posterior_router,  # issue 10's name for the same prototype
    "labelagent": labelagent_system,
    "best-human-only": best_human_only,
}


def resolve_llm_spec(spec: str | None, dataset: str) -> str | None:
    """A bare `simulated` becomes `content:acc=<LLM_ACCURACY[dataset]>` (errors follow the
    content, evals/content_llm.py), `simulated-flat` today's `simulated:acc=...` (each item's
    chance drawn at random); others pass through."""
    if spec not in ("simulated", "simulated-flat"):
        return spec
    if dataset not in LLM_ACCURACY:
        known = ", ".join(sorted(LLM_ACCURACY))
        raise ConfigError(f"no default LLM accuracy for '{dataset}' ({known}); give acc=X")
    kind = "content" if spec == "simulated" else "simulated"
    return f"{kind}:acc={LLM_ACCURACY[dataset]}"


def get_system(name: str) -> SystemFn:
    """The registered system `name`; ConfigError listing the known names otherwise."""
    try:
        return SYSTEMS[name]
    except KeyError:
        known = ", ".join(sorted(SYSTEMS))
        raise ConfigError(f"unknown system '{name}'; known: {known}") from None
