"""Query strategies by name: the registry, the uncertainty one-liners and the hybrid.

Every strategy has one signature, `(probs (N, C) | None, embeddings (N, d), candidates (m,),
n, rng, **ctx) -> Selection`, where `candidates` are pool row indices and the Selection holds
n of them, best first, with their scores (higher = more worth a look); `contract.contract`
enforces the shared rules (unique candidates, PoolExhaustedError, n == 0). Context keys:
`member_probs` (K, N, C), `labelled` (L,) pool indices, `label_embeddings` (C, d),
`hybrid_factor` int. Row scores and their combinators live in `scoring`, k-means / core-set /
zero-shot in `diversity`. Adding a strategy = one line (`uncertainty(score, name)`) or one
function decorated with `contract`, plus one line in STRATEGIES.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.errors import ConfigError
from agent.learn import scoring
from agent.learn.contract import Array, Gen, Probs, StrategyFn, contract, fill, need_probs, top_n
from agent.learn.diversity import (
    CORESET_LABELLED,
    CORESET_SAMPLE,
    KMEANS_SAMPLE,
    MINIBATCH_ABOVE,
    cluster,
    coreset,
    kmeans,
    representatives,
    zeroshot,
)
from agent.learn.multilabel import max_label_uncertainty, mean_label_uncertainty
from agent.learn.scoring import disagreement, rowwise, uncertainty
from agent.types import Selection

__all__ = [
    "CORESET_LABELLED",
    "CORESET_SAMPLE",
    "KMEANS_SAMPLE",
    "MINIBATCH_ABOVE",
    "STRATEGIES",
    "StrategyFn",
    "coreset",
    "entropy",
    "get_strategy",
    "hybrid",
    "kl_consensus",
    "kmeans",
    "label_max_uncertainty",
    "label_mean_uncertainty",
    "least_confidence",
    "margin",
    "random_sampling",
    "vote_entropy",
    "zeroshot",
]


@contract
def random_sampling(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Uniform random candidates: the baseline every other strategy must beat."""
    return top_n(rng.random(candidates.size), candidates, n, rng)


least_confidence = uncertainty(scoring.one_minus_max, "least_confidence")
margin = uncertainty(scoring.one_minus_margin, "margin")
entropy = uncertainty(scoring.entropy, "entropy")
vote_entropy = disagreement(scoring.hard_vote_entropy, "vote_entropy")
kl_consensus = disagreement(scoring.mean_kl, "kl_consensus")
# Multi-label: probs (N, C) hold P(label in the set) per label, not a distribution over labels.
label_mean_uncertainty = uncertainty(mean_label_uncertainty, "label_mean_uncertainty")
label_max_uncertainty = uncertainty(max_label_uncertainty, "label_max_uncertainty")


@contract
def hybrid(
    probs: Probs, embeddings: Array, candidates: Array, n: int, rng: Gen, **ctx: Any
) -> Selection:
    """Uncertainty x diversity: the `hybrid_factor` * n smallest-margin candidates (default 10)
    are clustered into n groups and each group gives its most uncertain member."""
    probs = need_probs(probs, embeddings, "hybrid")
    factor = int(ctx.get("hybrid_factor", 10))
    if factor < 1:
        raise ConfigError(f"hybrid_factor must be >= 1, got {factor}")
    uncertain = top_n(
        rowwise(probs, candidates, scoring.one_minus_margin),
        np.arange(candidates.size),
        min(candidates.size, factor * n),
        rng,
    )
    X = np.asarray(embeddings[candidates[uncertain.indices]], np.float32)
    labels, centres = cluster(X, n, rng)
    rows, scores = representatives(X, labels, centres, uncertain.scores)
    return fill(uncertain.indices[rows].tolist(), scores, candidates, n, rng)


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
    "label_mean_uncertainty": label_mean_uncertainty,
    "label_max_uncertainty": label_max_uncertainty,
}


def get_strategy(name: str) -> StrategyFn:
    """The registered strategy `name`; ConfigError listing the known names otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ConfigError(f"unknown strategy '{name}'; known: {known}") from None
