"""Prediction-powered accuracy of the machine labels: a predictor everywhere, audits to correct it.

For every machine-labelled item the loop predicts f = P(its handed-over label is right). The
mean of f over all M items is cheap and tight but as biased as the predictor; people's answers
on a random sample of audited items measure that bias. PPI++ (Angelopoulos, Duchi and Zrnic
2023, arXiv 2311.01453) weighs the two by a tuned lambda:

    theta = lambda * mean_M(f) + mean_j (c_j - lambda * f_j) / (M q_j)

where c_j is 1 when the audited label was right and q_j the chance that the sampling drew
item j (1/M for a uniform draw; more where the predictor is least sure for an active one, as
in Zrnic and Candes 2024, arXiv 2403.03208). The estimate is unbiased whatever the predictor,
so a wrong error model widens the interval but never breaks it; lambda = 0 is the plain
audit mean. The interval is a normal one on the estimate's variance, with one right and one
wrong pseudo-audit among the residuals so that a sample with no error seen is not taken as
certainty (the same idea as the Agresti-Coull "plus two").

Why not the authors' `ppi-python`: it pulls numba, statsmodels, pandas and gdown (a Google
Drive downloader) for these twenty lines, and has no inverse-probability weights for the
with-replacement draws that active audits use here; `tests/test_ppi.py` checks this code
against the published formulas on cases worked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

AUDIT_POPULATION = "audit_population"  # store meta: the predictions behind the last audit


@dataclass(frozen=True)
class PPIEstimate:
    """Accuracy of the machine labels: `value` in [low, high] at `level` from `audits` draws,
    with the weight `lam` given to the predictor."""

    value: float
    low: float
    high: float
    audits: int
    lam: float
    level: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ppi_accuracy(
    correct: np.ndarray,
    predicted_audited: np.ndarray,
    predicted_all: np.ndarray,
    draw_probability: np.ndarray | None = None,
    level: float = 0.95,
    lam: float | None = None,
) -> PPIEstimate:
    """The prediction-powered mean of `correct` over the population.

    correct (n,) 0/1 for each audit draw; predicted_audited (n,) f of those draws;
    predicted_all (M,) f of every machine-labelled item; draw_probability (n,) the chance
    q_j of each draw (default uniform 1/M); lam fixed, or None to tune it (PPI++)."""
    pop = np.asarray(predicted_all, dtype=np.float64)
    if pop.size == 0:
        raise ValueError("need a population of machine-labelled items")
    return ppi_accuracy_from_moments(
        correct, predicted_audited, draw_probability, pop.size, float(pop.mean()),
        float(pop.var()), level, lam,
    )


def ppi_accuracy_from_moments(
    correct: np.ndarray,
    predicted_audited: np.ndarray,
    draw_probability: np.ndarray | None,
    items: int,
    mean_predicted: float,
    var_predicted: float,
    level: float = 0.95,
    lam: float | None = None,
) -> PPIEstimate:
    """`ppi_accuracy` with the population given by its size, mean and variance of f (all
    the estimate needs of it; what the store keeps of an audit's population)."""
    c = np.asarray(correct, dtype=np.float64)
    f = np.asarray(predicted_audited, dtype=np.float64)
    n, m = c.size, int(items)
    if n == 0 or m == 0 or f.shape != c.shape:
        raise ValueError(f"need audits and a population: {n} audits, {m} items")
    weight = _weights(draw_probability, n, m)  # 1 / (M q_j): 1 for a uniform draw
    if lam is None:
        lam = _tuned_lambda(c, f, weight, var_predicted, m)
    rectifier = weight * (c - lam * f)
    value = lam * mean_predicted + rectifier.mean()
    var = (lam**2) * var_predicted / m + _guarded_var(rectifier, lam * mean_predicted) / n
    half = float(norm.ppf(0.5 + level / 2) * np.sqrt(var))
    value = float(np.clip(value, 0.0, 1.0))
    return PPIEstimate(value, max(0.0, value - half), min(1.0, value + half), n, lam, level)


def _weights(q: np.ndarray | None, n: int, m: int) -> np.ndarray:
    if q is None:
        return np.ones(n)
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (n,) or np.any(q <= 0):
        raise ValueError("draw probabilities must be positive, one per audit")
    return 1.0 / (m * q)


def _tuned_lambda(c: np.ndarray, f: np.ndarray, w: np.ndarray, var_pop: float, m: int) -> float:
    """The variance-minimising lambda, clipped to [0, 1] (PPI++ for a mean, weighted)."""
    n = c.size
    if n < 2:
        return 0.0
    wc, wf = w * c, w * f
    cov = float(np.cov(wc, wf)[0, 1])
    var_f = float(np.var(wf, ddof=1)) + var_pop * n / m
    return float(np.clip(cov / var_f, 0.0, 1.0)) if var_f > 1e-12 else 0.0


def _guarded_var(rectifier: np.ndarray, shift: float) -> float:
    """Variance of the rectifier draws with one right and one wrong pseudo-draw (at the
    predictor's mean) among them: no sample is taken as certain."""
    padded = np.concatenate([rectifier, [1.0 - shift, -shift]])
    return float(np.var(padded, ddof=1))


def active_draw_probabilities(predicted: np.ndarray, uniform_share: float = 0.5) -> np.ndarray:
    """Chance of drawing each item (M,), summing to 1: a `uniform_share` spread evenly (so no
    item is ever left out) and the rest where the predictor is least sure, in proportion to
    sqrt(f (1 - f)), the spread of a right/wrong outcome with chance f."""
    f = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, 1.0)
    m = f.size
    spread = np.sqrt(f * (1.0 - f)) + 1e-6
    return uniform_share / m + (1.0 - uniform_share) * spread / spread.sum()
