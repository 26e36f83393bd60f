"""Prediction-powered accuracy of the machine labels: a predictor everywhere, audits to correct it.

For every machine-labelled item the loop predicts f = P(its handed-over label is right). The
mean of f over all M items is cheap and tight but as biased as the predictor; people's answers
on a random sample of audited items measure that bias. PPI++ (Angelopoulos, Duchi and Zrnic
2023, arXiv 2311.01453) weighs the two by a tuned lambda:

    theta = lambda * mean_M(f) + sum_j w_j (c_j - lambda * f_j) / sum_j w_j,  w_j = 1 / (M q_j)

where c_j is 1 when the audited label was right and q_j the chance that the sampling drew
item j (1/M for a uniform draw; more where the predictor is least sure for an active one, as
in Zrnic and Candes 2024, arXiv 2403.03208), the weights taken in Hajek's normalised form
(`pooled_ppi_accuracy` says why). The estimate is unbiased (to first order, for the normalised
weights) whatever the predictor, so a wrong error model widens the interval but does not bias
it; lambda = 0 is the plain audit mean. The variance counts one right and one wrong
pseudo-audit among the residuals, so that a sample with no error seen is not taken as
certainty (the idea of Agresti-Coull's "plus two"), and the interval is Wilson's score
interval at the effective number of audits that variance implies (Kish's design effect): near
100 % a normal interval undercovers, because the spread it rests on shrinks with the errors a
sample happens to miss (0.89-0.93 measured at 150 draws of labels right on 97-98 %).

Several audits (a job checks its target more than once) are pooled into one estimate: each
draw keeps its own batch's weight and population, so the estimate is the audits' accuracies
averaged by draws. Machine labels only get better between audits as a rule (people's answers
replace them, the classifier learns from those), so the older batches pull it low, not high.

Why not the authors' `ppi-python`: it pulls numba, statsmodels, pandas and gdown (a Google
Drive downloader) for these twenty lines, and has no inverse-probability weights for the
with-replacement draws that active audits use here; `tests/test_ppi.py` checks this code
against the published formulas on cases worked by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass(frozen=True)
class AuditBatch:
    """One audit: per draw, right or wrong (`correct`), the predicted P(right) and the chance
    that the draw was made (None: uniform); its population by size, mean and variance of the
    predicted P(right) (all the estimate needs of it, and what the store keeps)."""

    correct: np.ndarray
    predicted: np.ndarray
    draw_probability: np.ndarray | None
    items: int
    mean_predicted: float
    var_predicted: float

    def weights(self) -> np.ndarray:
        """1 / (M q_j) per draw: 1 for a uniform draw."""
        n = np.asarray(self.correct).size
        if self.draw_probability is None:
            return np.ones(n)
        q = np.asarray(self.draw_probability, dtype=np.float64)
        if q.shape != (n,) or np.any(q <= 0):
            raise ValueError("draw probabilities must be positive, one per audit")
        return 1.0 / (self.items * q)


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
    """`ppi_accuracy` with the population given by its size, mean and variance of f."""
    batch = AuditBatch(np.asarray(correct, dtype=np.float64),
                       np.asarray(predicted_audited, dtype=np.float64), draw_probability,
                       int(items), mean_predicted, var_predicted)  # fmt: skip
    return pooled_ppi_accuracy([batch], level, lam)


def pooled_ppi_accuracy(
    batches: Sequence[AuditBatch], level: float = 0.95, lam: float | None = None
) -> PPIEstimate:
    """The prediction-powered accuracy of one or more audits, each draw weighed within its
    own batch; `lam` fixed, or None to tune it over all draws (PPI++).

    The weighted residuals are averaged in Hajek's form (weights normalised to mean 1 within
    each batch), not Horvitz-Thompson's: with labels nearly all right the latter's spread is
    mostly that of the weights, and it undercovered (0.71-0.87 at 98 %, measured, with a
    wrong predictor steering the draws); Hajek's covered 0.91-0.98."""
    c = np.concatenate([np.asarray(b.correct, dtype=np.float64) for b in batches])
    f = np.concatenate([np.asarray(b.predicted, dtype=np.float64) for b in batches])
    n = c.size
    if n == 0 or f.shape != c.shape or any(b.items <= 0 for b in batches):
        raise ValueError(f"need audits and a population: {n} audits, {len(batches)} batches")
    weight = np.concatenate([(w := b.weights()) / w.mean() for b in batches])  # Hajek
    sizes = [np.asarray(b.correct).size for b in batches]
    share = np.array(sizes) / n
    mean_predicted = float(share @ [b.mean_predicted for b in batches])
    # the variance the predictor's population means add to the estimate, per unit lambda^2
    pop_var = float(np.sum(share**2 * [b.var_predicted / b.items for b in batches]))
    if lam is None:
        lam = _tuned_lambda(c, f, weight, pop_var * n)
    residual = c - lam * f
    batch = np.repeat(np.arange(len(batches)), sizes)
    batch_mean = np.bincount(batch, weight * residual) / np.array(sizes)
    rectified = float(np.mean(weight * residual))
    value = float(np.clip(lam * mean_predicted + rectified, 0.0, 1.0))
    deviation = weight * (residual - batch_mean[batch])
    shift = lam * mean_predicted + rectified
    var = (lam**2) * pop_var + _guarded_var(deviation, shift) / n
    low, high = _wilson_at_design_effect(value, var, n, level)
    return PPIEstimate(value, low, high, n, lam, level)


def _wilson_at_design_effect(value: float, var: float, n: int, level: float) -> tuple[float, float]:
    """Wilson's score interval for a 0/1 mean `value` whose estimate has variance `var`, at
    the effective sample size p (1 - p) / var, p the value moved toward 1/2 as by one right
    and one wrong draw more (so a value of 0 or 1 still has a spread)."""
    z2 = float(norm.ppf(0.5 + level / 2)) ** 2
    moved = (value * n + 1) / (n + 2)
    n_eff = moved * (1.0 - moved) / var if var > 0 else float(n)
    spread = value * (1.0 - value)
    centre = (value + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = np.sqrt(z2) / (1 + z2 / n_eff) * np.sqrt(spread / n_eff + z2 / (4 * n_eff**2))
    low, high = float(centre - half), float(centre + half)
    return (0.0 if low < 1e-12 else low), (1.0 if high > 1 - 1e-12 else high)  # rounding at 0, 1


def _tuned_lambda(c: np.ndarray, f: np.ndarray, w: np.ndarray, pop_var_n: float) -> float:
    """The variance-minimising lambda, clipped to [0, 1] (PPI++ for a mean, weighted);
    `pop_var_n`: the population means' variance times the draws."""
    if c.size < 2:
        return 0.0
    wc, wf = w * c, w * f
    cov = float(np.cov(wc, wf)[0, 1])
    var_f = float(np.var(wf, ddof=1)) + pop_var_n
    return float(np.clip(cov / var_f, 0.0, 1.0)) if var_f > 1e-12 else 0.0


def _guarded_var(deviation: np.ndarray, estimate: float) -> float:
    """Variance of the draws' deviations from their mean, with one right and one wrong
    pseudo-draw (deviating from the estimate by 1 - estimate and -estimate) among them: no
    sample is taken as certain."""
    padded = np.concatenate([deviation, [1.0 - estimate, -estimate]])
    return float(np.sum(padded**2) / (padded.size - 1))


def active_draw_probabilities(predicted: np.ndarray, uniform_share: float = 0.5) -> np.ndarray:
    """Chance of drawing each item (M,), summing to 1: a `uniform_share` spread evenly (so no
    item is ever left out) and the rest where the predictor is least sure, in proportion to
    sqrt(f (1 - f)), the spread of a right/wrong outcome with chance f."""
    f = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, 1.0)
    m = f.size
    spread = np.sqrt(f * (1.0 - f)) + 1e-6
    return uniform_share / m + (1.0 - uniform_share) * spread / spread.sum()
