"""Binomial confidence bounds and fixed-sequence threshold tests.

Every number that claims a precision or an accuracy comes with a bound that holds for a
stated confidence level.

- `wilson_interval`, `clopper_pearson_interval`, `lower_bound`: vectorised binomial bounds.
- `fixed_sequence_pass`: which thresholds of a pre-ordered chain pass a lower-bound test at
  full level (fixed-sequence testing, as in Learn-then-Test): no multiplicity penalty along
  one chain, because testing stops at the first failure.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

try:  # scipy ships with scikit-learn; without it, Wilson bounds stand in.
    from scipy.stats import beta as _beta
except ImportError:  # pragma: no cover - exercised only on installs without scipy
    _beta = None

Method = Literal["clopper_pearson", "wilson"]
DEFAULT_METHOD: Method = "clopper_pearson" if _beta is not None else "wilson"
# Looseness grid for threshold searches: quantile levels of the evidence, strict to loose.
QUANTILE_LEVELS: tuple[float, ...] = tuple(round(0.95 - 0.05 * i, 2) for i in range(20))


def _counts(k: ArrayLike, n: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Successes and trials as float arrays of one shape; ValueError unless 0 <= k <= n."""
    ka, na = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    if np.any(na < 0) or np.any(ka < 0) or np.any(ka > na):
        raise ValueError(f"need 0 <= successes <= trials, got k={ka!r}, n={na!r}")
    return ka, na


def check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")


def wilson_interval(k: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """Two-sided Wilson score interval (low, high) for k successes in n trials; n=0 -> (0, 1)."""
    check_level(level)
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
    check_level(level)
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
    check_level(level)
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
    return fixed_sequence(ok, lower_bound(na, na, level, method) >= target)


def fixed_sequence(ok: np.ndarray, testable: np.ndarray) -> np.ndarray:
    """The walk of `fixed_sequence_pass` for any test: candidates (s,) strict -> loose that
    passed (`ok`) before the first testable one that failed; untestable ones are skipped."""
    ok, testable = np.asarray(ok, dtype=bool), np.asarray(testable, dtype=bool)
    failed = testable & ~ok
    stop = int(np.argmax(failed)) if failed.any() else len(ok)
    return ok & testable & (np.arange(len(ok)) < stop)
