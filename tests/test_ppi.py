"""Prediction-powered accuracy: exact on cases worked by hand, valid when the predictor is
wrong on purpose, tighter when it is right, unbiased under active (weighted) draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from agent.routing.ppi import (
    AuditBatch,
    PPIEstimate,
    active_draw_probabilities,
    pooled_ppi_accuracy,
    ppi_accuracy,
)

Z = float(norm.ppf(0.975))


def test_lambda_zero_is_the_plain_audit_mean_with_wilson_at_the_guarded_spread() -> None:
    c = np.array([1, 1, 1, 0, 1, 1, 0, 1], dtype=float)
    est = ppi_accuracy(c, np.full(8, 0.9), np.full(100, 0.9), lam=0.0)
    padded = np.concatenate([c - 0.75, [1 - 0.75, -0.75]])  # the plus-two guard
    var = np.sum(padded**2) / 9 / 8
    moved = (0.75 * 8 + 1) / 10
    n_eff = moved * (1 - moved) / var
    centre = (0.75 + Z**2 / (2 * n_eff)) / (1 + Z**2 / n_eff)
    half = Z / (1 + Z**2 / n_eff) * np.sqrt(0.75 * 0.25 / n_eff + Z**2 / (4 * n_eff**2))
    assert est.value == pytest.approx(0.75)
    assert (est.low, est.high) == pytest.approx((centre - half, centre + half))


def test_pooled_batches_weigh_each_draw_within_its_own_audit() -> None:
    first = AuditBatch(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.5, 0.8]), None, 100, 0.8, 0.01)
    second = AuditBatch(np.array([1.0, 0.0]), np.array([0.95, 0.9]),
                        np.array([0.002, 0.004]), 400, 0.9, 0.02)  # fmt: skip
    est = pooled_ppi_accuracy([first, second], lam=1.0)
    w = np.array([1 / (400 * 0.002), 1 / (400 * 0.004)])  # 1 / (M q): 1.25, 0.625
    hajek = np.sum(w * (second.correct - second.predicted)) / w.sum()  # weights to mean 1
    assert est.audits == 5
    expected = 0.6 * 0.8 + 0.4 * 0.9 + (0.6 * np.mean(first.correct - first.predicted)
                                       + 0.4 * hajek)  # fmt: skip
    assert est.value == pytest.approx(expected)
    alone = pooled_ppi_accuracy([first], lam=1.0)
    assert est.high - est.low < alone.high - alone.low  # more draws, a narrower interval


def test_hajek_weights_keep_coverage_when_a_wrong_predictor_steers_the_draws() -> None:
    """Labels right on 98 %, draws steered by an inverted predictor (lambda falls to 0): the
    Horvitz-Thompson mean covered 0.71 here, its spread being the weights'."""
    rng = np.random.default_rng(3)
    m, n, hits = 5000, 300, 0
    p_right = np.clip(rng.beta(60, 1, m), 0, 1)
    f = 1 - p_right
    q = active_draw_probabilities(f)
    for _ in range(300):
        right = rng.random(m) < p_right
        drawn = rng.choice(m, size=n, p=q)
        est = ppi_accuracy(right[drawn].astype(float), f[drawn], f, q[drawn])
        hits += est.low <= right.mean() <= est.high
    assert hits / 300 >= 0.93


def test_an_interval_near_one_keeps_its_coverage() -> None:
    """150 draws of labels right on 98 %: a normal interval covered 0.89-0.93 here."""
    rng = np.random.default_rng(11)
    m, n, hits = 5000, 150, 0
    p_right = np.clip(rng.beta(60, 1, m), 0, 1)
    for _ in range(400):
        right = rng.random(m) < p_right
        drawn = rng.choice(m, size=n)
        est = ppi_accuracy(right[drawn].astype(float), p_right[drawn], p_right)
        hits += est.low <= right.mean() <= est.high
    assert hits / 400 >= 0.94


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


def test_right_after_an_audit_the_asked_items_own_labels_are_counted_not_charged() -> None:
    """1,000 machine labels at 0.90 [0.85, 0.95]; the audit asked 150, 100 of them right, and
    people fixed them: the 850 left hold 900 - 100 right labels, not 850 * 0.90."""
    from agent.routing.accuracy import LastAudit, _with_machine_estimate

    est = PPIEstimate(0.90, 0.85, 0.95, 150, 0.5, 0.95)
    after = _with_machine_estimate(250, 850, est, LastAudit(1000, 150, 100))
    assert after.value == pytest.approx((250 + 900 - 100) / 1100)
    assert (after.low, after.high) == pytest.approx(((250 + 750) / 1100, (250 + 850) / 1100))
    # 50 more answered since: their labels' worth is unknown, anywhere from all right to none
    more = _with_machine_estimate(300, 800, est, LastAudit(1000, 150, 100))
    assert more.value == pytest.approx((300 + 900 - 100 - 50 * 0.90) / 1100)
    assert (more.low, more.high) == pytest.approx(((300 + 850 - 100 - 50) / 1100, 1.0))
    added = _with_machine_estimate(300, 900, est, LastAudit(1000, 150, 100))  # items imported
    assert added.value == pytest.approx((300 + 900 * 0.90) / 1200)
