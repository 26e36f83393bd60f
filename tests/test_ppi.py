"""Prediction-powered accuracy: exact on cases worked by hand, valid when the predictor is
wrong on purpose, tighter when it is right, unbiased under active (weighted) draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from agent.routing.ppi import active_draw_probabilities, ppi_accuracy

Z = float(norm.ppf(0.975))


def test_lambda_zero_is_the_plain_audit_mean_with_the_plus_two_guard() -> None:
    c = np.array([1, 1, 1, 0, 1, 1, 0, 1], dtype=float)
    est = ppi_accuracy(c, np.full(8, 0.9), np.full(100, 0.9), lam=0.0)
    padded = np.concatenate([c, [1.0, 0.0]])
    half = Z * np.sqrt(np.var(padded, ddof=1) / 8)
    assert est.value == pytest.approx(0.75)
    assert (est.low, est.high) == pytest.approx((0.75 - half, min(1.0, 0.75 + half)))


def test_lambda_one_is_the_predictor_mean_plus_the_audited_residual() -> None:
    c = np.array([1, 0, 1, 1], dtype=float)
    f = np.array([0.9, 0.6, 0.8, 0.7])
    pop = np.array([0.9, 0.6, 0.8, 0.7, 0.5, 0.5])
    est = ppi_accuracy(c, f, pop, lam=1.0)
    assert est.value == pytest.approx(pop.mean() + np.mean(c - f))


def test_no_error_seen_is_not_certainty() -> None:
    est = ppi_accuracy(np.ones(50), np.ones(50), np.ones(5000))
    assert est.high == 1.0 and est.low < 0.99


def _coverage(predictor: str, active: bool, reps: int = 300, n: int = 200) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    m = 5000
    p_right = np.clip(rng.beta(6, 1.2, m), 0, 1)  # each item's true chance of being right
    hits, widths = 0, []
    for _ in range(reps):
        right = rng.random(m) < p_right
        truth = right.mean()
        f = {"good": p_right, "inverted": 1 - p_right, "overconfident": np.full(m, 0.99)}[
            predictor
        ]
        q = active_draw_probabilities(f) if active else np.full(m, 1 / m)
        drawn = rng.choice(m, size=n, replace=True, p=q)
        est = ppi_accuracy(right[drawn].astype(float), f[drawn], f, q[drawn])
        hits += est.low <= truth <= est.high
        widths.append(est.high - est.low)
    return hits / reps, float(np.mean(widths))


@pytest.mark.parametrize("predictor", ["inverted", "overconfident"])
@pytest.mark.parametrize("active", [False, True])
def test_a_wrong_predictor_widens_the_interval_but_keeps_it_valid(
    predictor: str, active: bool
) -> None:
    coverage, _ = _coverage(predictor, active)
    assert coverage >= 0.92, coverage


def test_a_good_predictor_tightens_it_and_active_draws_keep_it_valid() -> None:
    plain = _plain_width()
    coverage, width = _coverage("good", active=False)
    assert coverage >= 0.92 and width < 0.97 * plain  # all a calibrated f can give here
    coverage, active_width = _coverage("good", active=True)
    assert coverage >= 0.92 and active_width < width


def _plain_width(reps: int = 300, n: int = 200) -> float:
    rng = np.random.default_rng(7)
    p_right = np.clip(rng.beta(6, 1.2, 5000), 0, 1)
    widths = []
    for _ in range(reps):
        right = rng.random(5000) < p_right
        drawn = rng.choice(5000, size=n)
        est = ppi_accuracy(right[drawn].astype(float), np.zeros(n), np.zeros(5000), lam=0.0)
        widths.append(est.high - est.low)
    return float(np.mean(widths))


def test_active_draws_never_leave_an_item_out() -> None:
    q = active_draw_probabilities(np.array([1.0, 0.0, 0.5, 0.99]))
    assert q.sum() == pytest.approx(1.0) and np.all(q >= 0.5 / 4)
    with pytest.raises(ValueError):
        ppi_accuracy(np.ones(3), np.ones(3), np.ones(10), np.array([0.1, 0.0, 0.2]))
