"""Binomial bounds against known values, fixed-sequence tests, the stratified accuracy estimate
(with a coverage simulation) and the classifier's final-pass threshold."""

from __future__ import annotations

import numpy as np
import pytest

from agent.routing.accuracy import AccuracyEstimate, Combine, Stratum, estimate_accuracy
from agent.routing.bounds import (
    Method,
    clopper_pearson_interval,
    fixed_sequence_pass,
    lower_bound,
    proportion_interval,
    wilson_interval,
)
from agent.routing.thresholds import fit_classifier_threshold

# Published 95 % two-sided values (e.g. Newcombe 1998, table I; any CP table).
WILSON_95 = [((5, 10), (0.2366, 0.7634)), ((0, 10), (0.0, 0.2775)), ((10, 10), (0.7225, 1.0)),
             ((81, 263), (0.2553, 0.3662))]  # fmt: skip
CP_95 = [((5, 10), (0.1871, 0.8129)), ((0, 10), (0.0, 0.3085)), ((10, 10), (0.6915, 1.0)),
         ((1, 20), (0.0013, 0.2487))]  # fmt: skip


@pytest.mark.parametrize(("kn", "expected"), WILSON_95)
def test_wilson_matches_published_values(
    kn: tuple[int, int], expected: tuple[float, float]
) -> None:
    low, high = wilson_interval(*kn, level=0.95)
    assert (float(low), float(high)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(("kn", "expected"), CP_95)
def test_clopper_pearson_matches_published_values(
    kn: tuple[int, int], expected: tuple[float, float]
) -> None:
    low, high = clopper_pearson_interval(*kn, level=0.95)
    assert (float(low), float(high)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("method", ["clopper_pearson", "wilson"])
def test_no_trials_means_the_whole_unit_interval(method: Method) -> None:
    low, high = proportion_interval([0, 3], [0, 3], 0.95, method)
    assert (low[0], high[0]) == (0.0, 1.0)
    assert high[1] == 1.0 and 0.0 < low[1] < 1.0


def test_bounds_are_vectorised_and_nested_by_level() -> None:
    k, n = np.array([0, 3, 50, 99]), np.array([5, 10, 60, 100])
    narrow, wide = clopper_pearson_interval(k, n, 0.8), clopper_pearson_interval(k, n, 0.99)
    assert narrow[0].shape == (4,)
    assert np.all(wide[0] <= narrow[0]) and np.all(wide[1] >= narrow[1])


def test_one_sided_exact_lower_bound_has_its_closed_form_at_zero_failures() -> None:
    # With k = n the one-sided CP bound is (1 - level) ** (1 / n): 59 straight successes are
    # the fewest that certify 95 % precision at level 0.95, 58 are not enough.
    n = np.arange(1, 200)
    assert lower_bound(n, n, 0.95) == pytest.approx(0.05 ** (1 / n))
    assert float(lower_bound(59, 59, 0.95)) >= 0.95 > float(lower_bound(58, 58, 0.95))


def test_one_sided_bound_is_tighter_than_the_two_sided_low() -> None:
    assert float(lower_bound(90, 100, 0.95)) > float(clopper_pearson_interval(90, 100, 0.95)[0])


@pytest.mark.parametrize(("k", "n"), [(3, 2), (-1, 4), (1, -1)])
def test_impossible_counts_are_refused(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(k, n)


def test_unknown_method_and_bad_level_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown interval method"):
        proportion_interval(1, 2, 0.95, "wald")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        lower_bound(1, 2, 1.0)


def test_fixed_sequence_skips_impossible_candidates_and_stops_at_first_failure() -> None:
    #            too few   pass     pass     fail     pass (never reached)
    k = np.array([10, 100, 300, 300, 1000])
    n = np.array([10, 100, 305, 400, 1000])
    assert fixed_sequence_pass(k, n, 0.95).tolist() == [False, True, True, False, False]
    assert not fixed_sequence_pass(k[3:], n[3:], 0.95).any()


def test_stratum_without_checks_spans_zero_to_one() -> None:
    est = estimate_accuracy({"human": Stratum(100, assumed=1.0), "auto": Stratum(300)})
    assert (est.low, est.value, est.high) == pytest.approx((0.25, 0.625, 1.0))
    auto = est.strata["auto"]
    assert (auto.value, auto.low, auto.high) == (None, 0.0, 1.0)


def test_assumed_strata_are_exact_and_empty_strata_are_ignored() -> None:
    est = estimate_accuracy(
        {"human": Stratum(300, assumed=0.98), "none": Stratum(0), "gold": Stratum(100, assumed=1.0)}
    )
    assert est.low == est.value == est.high == pytest.approx(0.985)
    assert set(est.strata) == {"human", "gold"}


def test_to_json_says_the_value_its_interval_and_how_it_was_made() -> None:
    est = estimate_accuracy({"auto": Stratum(1000, checked=200, correct=190)})
    assert isinstance(est, AccuracyEstimate)
    assert list(est.to_json()) == ["value", "low", "high", "method", "audits", "level"]
    assert est.to_json()["method"] == "stratified-exact" and est.to_json()["audits"] == 200
    assert est.value == pytest.approx(0.95) and est.low < est.value < est.high


def test_one_stratum_gives_its_own_interval_and_two_combine_by_the_chosen_rule() -> None:
    one = estimate_accuracy({"a": Stratum(100, 50, 45)})
    assert (one.low, one.high) == pytest.approx(tuple(map(float, clopper_pearson_interval(45, 50))))
    pair = {"a": Stratum(100, 50, 45), "b": Stratum(100, 50, 45)}
    mover, bonf = estimate_accuracy(pair), estimate_accuracy(pair, combine="bonferroni")
    assert mover.value == bonf.value == pytest.approx(0.9)
    # Two independent halves: errors add in quadrature (about 1/sqrt(2) of one stratum's),
    # while Bonferroni sums worst cases at a stricter level (wider than one stratum's).
    width = one.high - one.low
    assert mover.high - mover.low == pytest.approx(width / np.sqrt(2), rel=0.1)
    assert bonf.high - bonf.low > width
    with pytest.raises(ValueError, match="combination"):
        estimate_accuracy(pair, combine="sum")  # type: ignore[arg-type]


def test_empty_corpus_and_bad_strata_are_refused() -> None:
    with pytest.raises(ValueError, match="no items"):
        estimate_accuracy({"a": Stratum(0)})
    with pytest.raises(ValueError, match="stratum"):
        Stratum(10, checked=3, correct=4)
    with pytest.raises(ValueError, match="assumed"):
        Stratum(10, assumed=1.5)


SCENARIOS: dict[str, list[tuple[int, float | None, int]]] = {
    # name: [(stratum size, true accuracy, audits)], the corpus is drawn around these
    "typical": [(2_000, None, 0), (8_000, 0.97, 120), (30_000, 0.90, 300)],
    "near_one": [(5_000, 0.995, 40), (5_000, 0.99, 60)],
    "thin_big_stratum": [(500, None, 0), (50_000, 0.80, 15), (3_000, 0.97, 400)],
    "unaudited": [(1_000, 0.9, 50), (1_000, 0.7, 0)],
}


def _coverage(
    scenario: str, method: Method, combine: Combine, draws: int, seed: int
) -> tuple[float, float]:
    """Share of synthetic corpora whose true accuracy the interval covers, and mean width.

    Each draw makes a finite corpus: every item is right with its stratum's probability, the
    audits are drawn without replacement, and the truth is the realised corpus accuracy.
    """
    rng = np.random.default_rng(seed)
    hits, width = 0, 0.0
    for _ in range(draws):
        strata: dict[str, Stratum] = {}
        right = total = 0
        for i, (size, acc, audits) in enumerate(SCENARIOS[scenario]):
            if acc is None:  # human labels, taken as right
                strata[f"s{i}"], good = Stratum(size, assumed=1.0), size
            else:
                good = int(rng.binomial(size, acc))
                seen = int(rng.hypergeometric(good, size - good, audits)) if audits else 0
                strata[f"s{i}"] = Stratum(size, audits, seen)
            right, total = right + good, total + size
        est = estimate_accuracy(strata, 0.95, method, combine)
        hits += est.low <= right / total <= est.high
        width += est.high - est.low
    return hits / draws, width / draws


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize(
    ("method", "combine", "floor"),
    # Measured over 2,000 draws: CP+MOVER 0.96-0.98; Wilson+MOVER 0.91 at 99.5 % accuracy with
    # 40 audits (why CP is the default), 0.95-0.97 elsewhere; CP+Bonferroni >= 0.995.
    [("clopper_pearson", "mover", 0.93), ("wilson", "mover", 0.88),
     ("clopper_pearson", "bonferroni", 0.95)],
)  # fmt: skip
def test_interval_covers_the_true_corpus_accuracy(
    scenario: str, method: Method, combine: Combine, floor: float
) -> None:
    coverage, _ = _coverage(scenario, method, combine, draws=400, seed=11)
    assert coverage >= floor, f"{scenario}/{method}/{combine}: coverage {coverage:.3f}"


def test_interval_is_informative_when_evidence_is_plentiful() -> None:
    # Coverage alone is won by [0, 1]; with hundreds of audits the interval must be tight:
    # about 2 x 1.96 x sqrt(sum w^2 p (1-p) / n) = 0.052 here.
    coverage, width = _coverage("typical", "clopper_pearson", "mover", draws=100, seed=3)
    assert coverage >= 0.9 and width < 0.06


def _calibrated(m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Max-probs uniform on [0.2, 1] and outcomes right with exactly that probability."""
    max_prob = rng.uniform(0.2, 1.0, m)
    return max_prob, rng.random(m) < max_prob


def test_classifier_threshold_meets_the_target_on_calibrated_data() -> None:
    max_prob, correct = _calibrated(3_000, np.random.default_rng(0))
    fit = fit_classifier_threshold(max_prob, correct, target=0.9)
    # Calibrated and uniform: true precision above t is (1 + t) / 2, so t >= 0.8 is needed.
    assert fit.fitted and 0.8 <= fit.threshold < 0.9
    assert fit.lower_bound >= 0.9 and fit.checked == int(np.sum(max_prob >= fit.threshold))
    labels, mask = fit.apply(np.array([[0.05, 0.95], [0.5, 0.5], [np.nan, np.nan]]))
    assert labels[0] == 1 and mask.tolist() == [True, False, False]
    assert fit.to_json()["threshold"] == fit.threshold


def test_classifier_threshold_is_rarely_too_loose_over_many_draws() -> None:
    rng = np.random.default_rng(1)
    too_loose = 0
    for _ in range(300):
        fit = fit_classifier_threshold(*_calibrated(400, rng), target=0.9)
        too_loose += fit.fitted and (1 + fit.threshold) / 2 < 0.9
    assert too_loose / 300 <= 0.06


def test_classifier_threshold_refuses_without_enough_or_good_evidence() -> None:
    max_prob, correct = _calibrated(20, np.random.default_rng(2))
    thin = fit_classifier_threshold(max_prob, correct, target=0.9, min_evidence=30)
    assert not thin.fitted and thin.threshold == np.inf and thin.to_json()["threshold"] is None
    poor = fit_classifier_threshold(np.full(500, 0.99), np.arange(500) % 5 != 0, target=0.9)
    assert not poor.fitted and poor.evidence == 500  # 80 % right at any threshold
    with pytest.raises(ValueError, match="shapes"):
        fit_classifier_threshold(np.ones(3), np.ones(4), target=0.9)
