"""How sure we are: binomial confidence bounds, fixed-sequence threshold tests, corpus accuracy.

Three ideas share one module because they share one contract: every number that claims a
precision or an accuracy comes with a bound that holds for a stated confidence level, and a
stratum without evidence gets the whole [0, 1], never a guess.

- `wilson_interval`, `clopper_pearson_interval`, `lower_bound`: vectorised binomial bounds.
- `fixed_sequence_pass`: which thresholds of a pre-ordered chain pass a lower-bound test at
  full level (fixed-sequence testing, as in Learn-then-Test): no multiplicity penalty along
  one chain, because testing stops at the first failure.
- `estimate_accuracy`: corpus accuracy stratified by label source, with an interval that
  combines per-stratum exact intervals (MOVER by default, Bonferroni on request).
- `fit_classifier_threshold`: the probability above which the classifier may label the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

try:  # scipy ships with scikit-learn; without it, Wilson bounds stand in.
    from scipy.stats import beta as _beta
except ImportError:  # pragma: no cover - exercised only on installs without scipy
    _beta = None

Method = Literal["clopper_pearson", "wilson"]
Combine = Literal["mover", "bonferroni"]
DEFAULT_METHOD: Method = "clopper_pearson" if _beta is not None else "wilson"
# Looseness grid for threshold searches: quantile levels of the evidence, strict to loose.
QUANTILE_LEVELS: tuple[float, ...] = tuple(round(0.95 - 0.05 * i, 2) for i in range(20))


def _counts(k: ArrayLike, n: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Successes and trials as float arrays of one shape; ValueError unless 0 <= k <= n."""
    ka, na = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    if np.any(na < 0) or np.any(ka < 0) or np.any(ka > na):
        raise ValueError(f"need 0 <= successes <= trials, got k={ka!r}, n={na!r}")
    return ka, na


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")


def wilson_interval(k: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """Two-sided Wilson score interval (low, high) for k successes in n trials; n=0 -> (0, 1)."""
    _check_level(level)
    ka, na = _counts(k, n)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    safe_n = np.maximum(na, 1.0)
    p = ka / safe_n
    denom = 1.0 + z * z / safe_n
    centre = (p + z * z / (2 * safe_n)) / denom
    half = z * np.sqrt(p * (1 - p) / safe_n + z * z / (4 * safe_n * safe_n)) / denom
    empty = na == 0
    low = np.where(empty, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(empty, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low, high


def clopper_pearson_interval(
    k: ArrayLike, n: ArrayLike, level: float = 0.95
) -> tuple[np.ndarray, ...]:
    """Two-sided exact (Clopper-Pearson) interval (low, high); conservative; n=0 -> (0, 1)."""
    if _beta is None:  # pragma: no cover - scipy ships with scikit-learn
        raise RuntimeError("Clopper-Pearson bounds need scipy; use method='wilson'")
    _check_level(level)
    ka, na = _counts(k, n)
    tail = (1.0 - level) / 2
    low, high = np.zeros(ka.shape), np.ones(ka.shape)
    has_low, has_high = ka > 0, ka < na
    low[has_low] = _beta.ppf(tail, ka[has_low], na[has_low] - ka[has_low] + 1)
    high[has_high] = _beta.ppf(1 - tail, ka[has_high] + 1, na[has_high] - ka[has_high])
    return low, high


def proportion_interval(
    k: ArrayLike, n: ArrayLike, level: float = 0.95, method: Method = DEFAULT_METHOD
) -> tuple[np.ndarray, ...]:
    """Two-sided interval (low, high) by the named method."""
    if method == "clopper_pearson":
        return clopper_pearson_interval(k, n, level)
    if method == "wilson":
        return wilson_interval(k, n, level)
    raise ValueError(f"unknown interval method {method!r}; use 'clopper_pearson' or 'wilson'")


def lower_bound(
    k: ArrayLike, n: ArrayLike, level: float = 0.95, method: Method = DEFAULT_METHOD
) -> np.ndarray:
    """One-sided lower confidence bound at `level` (the low end of a 2*level-1 two-sided one)."""
    _check_level(level)
    return proportion_interval(k, n, 2 * level - 1, method)[0]


def fixed_sequence_pass(
    k: ArrayLike,
    n: ArrayLike,
    target: float,
    level: float = 0.95,
    method: Method = DEFAULT_METHOD,
) -> np.ndarray:
    """Which candidates (s,) of a chain ordered strict -> loose pass `lower bound >= target`.

    Fixed-sequence testing: walk the chain, stop at the first failure. Candidates that could
    not pass even with every item correct (too few items: the strict end) are skipped, not
    failed; that rule looks only at the counts n, never at outcomes, so the family-wise error
    stays 1 - level: with that probability no passed candidate has precision below `target`.
    (Skipping more, e.g. all candidates too thin to absorb a few errors, was measured: it
    loses more power at a few hundred audits than it gains at thousands.)
    """
    ka, na = _counts(k, n)
    ok = lower_bound(ka, na, level, method) >= target
    testable = lower_bound(na, na, level, method) >= target
    failed = testable & ~ok
    stop = int(np.argmax(failed)) if failed.any() else len(ok)
    return ok & (np.arange(len(ok)) < stop)


@dataclass(frozen=True)
class Stratum:
    """Items whose final label came from one source, with the human check of a sample of them.

    `checked`/`correct` must come from a uniform random sample of the stratum (audits), or the
    interval means nothing. `assumed` takes the accuracy as given (e.g. human labels at 1.0):
    no sampling error is added for it, so state the assumption where you report.
    """

    size: int
    checked: int = 0
    correct: int = 0
    assumed: float | None = None

    def __post_init__(self) -> None:
        if self.size < 0 or not 0 <= self.correct <= self.checked:
            raise ValueError(f"bad stratum counts: {self}")
        if self.assumed is not None and not 0.0 <= self.assumed <= 1.0:
            raise ValueError(f"assumed accuracy must lie in [0, 1], got {self.assumed}")


@dataclass(frozen=True)
class StratumEstimate:
    """One stratum's share of the estimate; `value` is None when nothing was checked."""

    size: int
    checked: int
    correct: int
    value: float | None
    low: float
    high: float
    assumed: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AccuracyEstimate:
    """Estimated corpus accuracy `value` with its interval [low, high] and the strata behind it."""

    value: float
    low: float
    high: float
    strata: dict[str, StratumEstimate]

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def estimate_accuracy(
    strata: Mapping[str, Stratum],
    level: float = 0.95,
    method: Method = DEFAULT_METHOD,
    combine: Combine = "mover",
) -> AccuracyEstimate:
    """Stratified corpus accuracy: stratum accuracies weighted by stratum size.

    Interval, combine="mover" (default): MOVER (Zou & Donner 2008) on the weighted sum. Each
    audited stratum's own interval [L_h, U_h] at `level` yields its lower and upper error, and
    the errors add in quadrature: low = value - sqrt(sum (w_h (p_h - L_h))^2), likewise high.
    The per-stratum limits are exact or Wilson, so the interval keeps their asymmetry near 100 %
    where a Wald interval from the stratified variance collapses (no error seen -> zero
    variance). Coverage is near nominal, not guaranteed: the tests check it by simulation.
    combine="bonferroni": per-stratum intervals at 1 - alpha/H, endpoints summed; coverage
    >= `level` by the union bound when the intervals are exact, at 30-50 % more width.
    Either way a stratum with items but no checks adds its whole [0, 1] (never averaged away;
    point value 0.5), and an assumed stratum adds its value exactly.
    """
    _check_level(level)
    if combine not in ("mover", "bonferroni"):
        raise ValueError(f"unknown combination {combine!r}; use 'mover' or 'bonferroni'")
    live = {name: s for name, s in strata.items() if s.size > 0}
    total = sum(s.size for s in live.values())
    if total == 0:
        raise ValueError("no items in any stratum: corpus accuracy is undefined")
    n_sampled = sum(s.assumed is None and s.checked > 0 for s in live.values())
    per_level = level if combine == "mover" else 1.0 - (1.0 - level) / max(n_sampled, 1)
    parts = {name: _stratum_estimate(s, per_level, method) for name, s in live.items()}
    w = np.array([s.size / total for s in live.values()])
    point = np.array([0.5 if p.value is None else p.value for p in parts.values()])
    low, high = np.array([[p.low, p.high] for p in parts.values()]).T
    sampled = np.array([not p.assumed and p.checked > 0 for p in parts.values()])
    down, up = (w * (point - low))[sampled], (w * (high - point))[sampled]
    if combine == "mover":  # errors add in quadrature
        err_down, err_up = float(np.sqrt(down @ down)), float(np.sqrt(up @ up))
    else:  # worst case: errors add up
        err_down, err_up = float(down.sum()), float(up.sum())
    value = float(w @ point)
    lo, hi = value - err_down, value + err_up
    # unsampled strata: their own [low, high] replaces the point value, not averaged away
    lo += float(w[~sampled] @ (low - point)[~sampled])
    hi += float(w[~sampled] @ (high - point)[~sampled])
    return AccuracyEstimate(value, max(0.0, float(lo)), min(1.0, float(hi)), parts)


def _stratum_estimate(s: Stratum, level: float, method: Method) -> StratumEstimate:
    """Point value and interval of one stratum at `level` (already split under Bonferroni)."""
    if s.assumed is not None:
        return StratumEstimate(s.size, s.checked, s.correct, s.assumed, s.assumed, s.assumed, True)
    if s.checked == 0:
        return StratumEstimate(s.size, 0, 0, None, 0.0, 1.0, False)
    low, high = proportion_interval(s.correct, s.checked, level, method)
    value = s.correct / s.checked
    return StratumEstimate(s.size, s.checked, s.correct, value, float(low), float(high), False)


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
