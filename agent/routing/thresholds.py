"""Auto-accept thresholds fitted from audits, and the classifier's final-pass threshold.

Both are the loosest thresholds whose precision lower bound, measured on human verdicts,
meets the target: fixed-sequence tests along chains strict -> loose (see `bounds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from agent.config import RoutingConfig
from agent.routing.bounds import (
    DEFAULT_METHOD,
    QUANTILE_LEVELS,
    Method,
    fixed_sequence_pass,
    lower_bound,
)
from agent.routing.evidence import Verdicts
from agent.routing.priority import AUDIT_REASONS
from agent.types import NO_LABEL

# Threshold chains in quantile-rank space, (llm, clf) speed of loosening; see fit_thresholds.
_CHAIN_TILTS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0))


@dataclass(frozen=True)
class Thresholds:
    """Confidence thresholds for auto-accept and the evidence that certified them.

    `lower_bound` is the one-sided lower confidence bound of auto-accept precision measured on
    `checked` audited candidates inside the region (`correct` of them right) out of `evidence`
    audited candidates in all. The default accepts nothing (+inf): see `fit_thresholds`.
    """

    llm: float = np.inf
    clf: float = np.inf
    fitted: bool = False
    lower_bound: float = 0.0
    checked: int = 0
    correct: int = 0
    evidence: int = 0
    note: str = "no evidence yet: nothing is auto-accepted"

    @property
    def accepts_any(self) -> bool:
        return bool(np.isfinite(self.llm) and np.isfinite(self.clf))

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["llm"] = d["llm"] if self.accepts_any else None
        d["clf"] = d["clf"] if self.accepts_any else None
        return d


@dataclass(frozen=True)
class Evidence:
    """Human verdicts on candidates (m,): first-opinion confidence, classifier probability of
    the agreed label, whether the agreed label was right, and whether the item was an audit."""

    llm_conf: np.ndarray
    clf_prob: np.ndarray
    correct: np.ndarray
    audited: np.ndarray

    @classmethod
    def from_verdicts(cls, verdicts: Verdicts) -> Evidence:
        """The candidates among human verdicts (the LLM and the classifier agreed)."""
        agreed = verdicts.where((verdicts.llm != NO_LABEL) & (verdicts.llm == verdicts.model))
        return cls(
            np.nan_to_num(agreed.llm_conf, nan=-1.0),
            agreed.model_conf,
            agreed.llm == agreed.human,
            np.isin(agreed.reason, AUDIT_REASONS),  # LLM audits sample candidates uniformly too
        )

    @classmethod
    def from_records(cls, records: Sequence[Sequence[float | bool]]) -> Evidence:
        """From (llm_conf, clf_prob, correct[, audited]) rows; a missing `audited` means True."""
        rows = [tuple(r) + (True,) * (4 - len(r)) for r in records]
        cols = np.asarray(rows, dtype=float).reshape(-1, 4).T
        return cls(cols[0], cols[1], cols[2].astype(bool), cols[3].astype(bool))


def fit_thresholds(
    evidence: Evidence, config: RoutingConfig, method: Method = DEFAULT_METHOD
) -> Thresholds:
    """Loosest thresholds whose auto-accept precision lower bound meets the target.

    Only audited candidates enter: they are a uniform sample of candidates, so the precision
    of any region of (llm_conf, clf_prob) measured on them is unbiased. Below
    `config.min_evidence` audits, or when nothing passes, nothing is auto-accepted: a
    threshold without evidence (say 0.9/0.9) would promise a precision nobody measured, and
    the census audit in `route` makes the first reviews count, so evidence comes fast.

    Search: three nested chains of threshold pairs in quantile-rank space, strict to loose
    (both axes together, LLM faster, classifier faster). Each chain is tested by fixed-sequence
    testing at level 1 - alpha/3 (Bonferroni over chains), so with probability >= the
    configured level, every passing pair has precision >= target. The pair with the most
    audited candidates inside (the most auto-accepts) wins.
    """
    audited = evidence.audited
    llm, clf, ok = evidence.llm_conf[audited], evidence.clf_prob[audited], evidence.correct[audited]
    m = len(ok)
    if m < config.min_evidence:
        return Thresholds(evidence=m, note=f"{m} audits < min_evidence {config.min_evidence}")
    level = 1.0 - (1.0 - config.confidence_level) / len(_CHAIN_TILTS)
    best: tuple[int, float, float, float, int] | None = None  # (n, bound, t_llm, t_clf, k)
    for tilt in _CHAIN_TILTS:
        pairs = _chain(np.nan_to_num(llm, nan=-1.0), clf, tilt)
        inside = (llm[None, :] >= pairs[:, :1]) & (clf[None, :] >= pairs[:, 1:])
        n, k = inside.sum(axis=1), (inside & ok[None, :]).sum(axis=1)
        passed = fixed_sequence_pass(k, n, config.target_precision, level, method)
        for i in np.flatnonzero(passed):
            bound = float(lower_bound(k[i], n[i], level, method))
            key = (int(n[i]), bound, float(pairs[i, 0]), float(pairs[i, 1]), int(k[i]))
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:
        return Thresholds(evidence=m, note=f"no region of {m} audits reaches the target")
    n_in, bound, t_llm, t_clf, k_in = best
    note = f"{k_in}/{n_in} audited auto-accepts right; bound {bound:.3f} at level {level:.4f}"
    return Thresholds(t_llm, t_clf, True, bound, n_in, k_in, m, note)


def _chain(llm: np.ndarray, clf: np.ndarray, tilt: tuple[float, float]) -> np.ndarray:
    """Threshold pairs (s, 2), strict to loose, at quantile ranks 1 - looseness * tilt."""
    loose = 1.0 - np.asarray(QUANTILE_LEVELS)
    q_llm = np.quantile(llm, np.clip(1.0 - loose * tilt[0], 0, 1), method="inverted_cdf")
    q_clf = np.quantile(clf, np.clip(1.0 - loose * tilt[1], 0, 1), method="inverted_cdf")
    pairs = np.stack([q_llm, q_clf], axis=1)
    keep = np.ones(len(pairs), dtype=bool)
    keep[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
    return pairs[keep]


@dataclass(frozen=True)
class ClassifierThreshold:
    """Max-probability threshold for the classifier's final pass, and the evidence behind it.

    `checked`/`correct` count evidence items at or above the threshold; `threshold` is +inf
    (label nothing) when no threshold could be certified.
    """

    threshold: float
    lower_bound: float
    checked: int
    correct: int
    evidence: int
    fitted: bool

    def apply(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (n,) and a mask (n,) of the items confident enough, from probs (n, C)."""
        probs = np.asarray(probs, dtype=float)
        confident = np.nan_to_num(probs.max(axis=1), nan=-1.0) >= self.threshold
        return probs.argmax(axis=1), confident

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; an uncertified (+inf) threshold becomes null."""
        out = dict(self.__dict__)
        out["threshold"] = self.threshold if np.isfinite(self.threshold) else None
        return out


def fit_classifier_threshold(
    max_prob: ArrayLike,
    correct: ArrayLike,
    target: float,
    level: float = 0.95,
    method: Method = DEFAULT_METHOD,
    min_evidence: int = 30,
) -> ClassifierThreshold:
    """Loosest max-prob threshold whose precision lower bound on the evidence meets `target`.

    Evidence (m,): the classifier's max-probability and whether its argmax matched a human
    label, for items it scored before that label was known. Candidates are quantiles of the
    evidence, strict to loose, tested by `fixed_sequence_pass`. Held-out labels from review
    are not a random sample of the pool (selection picks hard items), which makes them
    pessimistic rather than optimistic; a random audit of classifier-labelled items is better.
    """
    mp = np.asarray(max_prob, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if mp.shape != ok.shape or mp.ndim != 1:
        raise ValueError(f"max_prob {mp.shape} and correct {ok.shape} must be equal 1-d shapes")
    if len(mp) < min_evidence:
        return ClassifierThreshold(np.inf, 0.0, 0, 0, len(mp), False)
    cuts = np.unique(np.quantile(mp, QUANTILE_LEVELS, method="inverted_cdf"))[::-1]
    inside = mp[None, :] >= cuts[:, None]
    n = inside.sum(axis=1)
    k = (inside & ok[None, :]).sum(axis=1)
    passed = fixed_sequence_pass(k, n, target, level, method)
    if not passed.any():
        return ClassifierThreshold(np.inf, 0.0, 0, 0, len(mp), False)
    best = int(np.flatnonzero(passed)[-1])
    bound = float(lower_bound(k[best], n[best], level, method))
    return ClassifierThreshold(float(cuts[best]), bound, int(n[best]), int(k[best]), len(mp), True)
