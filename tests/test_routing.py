"""Agreement routing: reasons, audits, the linear-pool best label, fitted thresholds, priority."""

from __future__ import annotations

import time

import numpy as np
import pytest

from agent.config import RoutingConfig
from agent.routing.priority import review_priority, unlabelled_in_cell
from agent.routing.route import REASONS, Route, RoutingResult, route
from agent.routing.thresholds import Evidence, Thresholds, fit_thresholds
from agent.routing.votes import Votes, best_label

NAN = float("nan")
SURE, UNSURE = [0.9, 0.05, 0.05], [0.6, 0.2, 0.2]
# one item per reason: (llm label, llm conf, classifier probs, expected route, expected reason)
CASES = [
    (0, 0.95, SURE, Route.AUTO_ACCEPT, "agree"),
    (1, 0.95, SURE, Route.REVIEW, "disagree"),
    (-1, NAN, SURE, Route.REVIEW, "abstain"),
    (-1, NAN, [NAN] * 3, Route.REVIEW, "no_evidence"),
    (2, 0.9, [NAN] * 3, Route.REVIEW, "clf_unsure"),
    (0, 0.6, SURE, Route.REVIEW, "llm_unsure"),
    (0, 0.95, UNSURE, Route.REVIEW, "clf_unsure"),
    (0, 0.95, SURE, Route.REVIEW, "committee_split"),
    (0, NAN, SURE, Route.REVIEW, "llm_unsure"),
]
SPLIT_ITEM = 7


def _hand_made() -> RoutingResult:
    llm_label = np.array([c[0] for c in CASES])
    llm_conf = np.array([c[1] for c in CASES])
    clf = np.array([c[2] for c in CASES])
    members = np.repeat(np.nan_to_num(clf, nan=1 / 3)[None], 5, axis=0)
    members[:3, SPLIT_ITEM] = [0.1, 0.8, 0.1]  # 3 of 5 members vote for class 1
    votes = Votes.from_llm(llm_label, llm_conf, clf, members)
    return route(votes, Thresholds(0.8, 0.8), audit_rate=0.0, rng=0)


def test_every_reason_on_hand_made_items() -> None:
    result = _hand_made()
    assert result.reason_names().tolist() == [c[4] for c in CASES]
    assert result.route.tolist() == [int(c[3]) for c in CASES]
    assert result.candidate.tolist() == [True, False, False, False, False, True, True, False, True]
    assert result.eligible.tolist() == [True] + [False] * 8
    counts = result.counts()
    assert counts["auto_accept"] + counts["review"] + counts["audit"] == len(CASES)
    assert sum(counts[f"reason_{r}"] for r in REASONS) == len(CASES)


def test_best_label_is_the_agreed_one_or_the_linear_pool_argmax() -> None:
    result = _hand_made()
    # agree: mean of 0.9 (classifier) and 0.95 (LLM) on class 0
    assert result.label[0] == 0 and result.p_wrong[0] == pytest.approx(0.075)
    # disagree: class 0 gets (0.9 + 0.025) / 2, class 1 gets (0.05 + 0.95) / 2 = 0.5
    assert result.label[1] == 1 and result.p_wrong[1] == pytest.approx(0.5)
    assert result.label[2] == 0 and result.p_wrong[2] == pytest.approx(0.1)  # classifier alone
    assert result.label[3] == -1 and result.p_wrong[3] == 1.0  # nobody voted
    assert result.label[4] == 2 and result.p_wrong[4] == pytest.approx(0.1)  # LLM alone


def test_a_kept_label_is_scored_even_when_a_third_member_prefers_another() -> None:
    votes = Votes.from_llm(
        np.array([0]), np.array([0.7]), np.array([[0.6, 0.4]]), zeroshot_probs=np.array([[0, 1.0]])
    )
    pooled, _ = best_label(votes)
    kept, p_wrong = best_label(votes, keep=np.array([0]))
    assert pooled[0] == 1 and kept[0] == 0
    assert p_wrong[0] == pytest.approx(1 - (0.6 + 0.7 + 0.0) / 3)


def _agreeing(n: int, conf: float = 0.95) -> Votes:
    clf = np.tile([conf, 1 - conf], (n, 1))
    return Votes.from_llm(np.zeros(n, dtype=int), np.full(n, conf), clf)


def test_without_certified_thresholds_nothing_is_accepted_and_every_candidate_is_audited() -> None:
    votes = Votes.from_llm(
        np.array([0, 0, 1, -1]), np.array([0.99, 0.5, 0.99, NAN]), np.tile([0.99, 0.01], (4, 1))
    )
    result = route(votes, Thresholds(), audit_rate=0.05, rng=1)
    assert not Thresholds().accepts_any
    assert result.route.tolist() == [Route.AUDIT, Route.AUDIT, Route.REVIEW, Route.REVIEW]
    assert result.reason_names().tolist() == ["audit", "audit", "disagree", "abstain"]


def test_audit_share_matches_the_rate_and_is_seed_deterministic() -> None:
    n, rate = 200_000, 0.05
    votes = _agreeing(n)
    first = route(votes, Thresholds(0.9, 0.9), rate, rng=42)
    share = np.mean(first.route == Route.AUDIT)
    assert abs(share - rate) < 0.003  # 6 standard errors
    assert np.all(first.route[first.route != Route.AUDIT] == Route.AUTO_ACCEPT)
    again = route(votes, Thresholds(0.9, 0.9), rate, rng=np.random.default_rng(42))
    other = route(votes, Thresholds(0.9, 0.9), rate, rng=43)
    assert np.array_equal(first.route, again.route)
    assert not np.array_equal(first.route, other.route)


def test_audits_also_sample_candidates_below_the_thresholds() -> None:
    unsure = route(_agreeing(100_000, conf=0.7), Thresholds(0.9, 0.9), 0.05, rng=3)
    assert not unsure.eligible.any()
    assert abs(np.mean(unsure.route == Route.AUDIT) - 0.05) < 0.005
    assert set(unsure.reason_names()[unsure.route == Route.REVIEW]) == {"llm_unsure"}


def test_zero_shot_member_stands_in_for_the_llm() -> None:
    zs = np.array([[0.8, 0.2], [0.3, 0.7], [NAN, NAN]])
    votes = Votes.from_zeroshot(zs, np.tile([0.9, 0.1], (3, 1)))
    assert votes.mode == "zeroshot" and votes.llm_label.tolist() == [0, 1, -1]
    result = route(votes, Thresholds(0.75, 0.85), 0.0, rng=0)
    assert result.reason_names().tolist() == ["agree", "disagree", "abstain"]


def test_inconsistent_inputs_are_refused() -> None:
    clf = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="llm_label"):
        Votes.from_llm(np.zeros(2, dtype=int), np.zeros(2), clf)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        Votes.from_llm(np.array([0, 2, 0]), np.zeros(3), clf)
    with pytest.raises(ValueError, match="member_probs"):
        Votes.from_llm(np.zeros(3, dtype=int), np.zeros(3), clf, np.zeros((4, 3, 3)))
    with pytest.raises(ValueError, match="audit_rate"):
        route(Votes.from_llm(np.zeros(3, dtype=int), np.zeros(3), clf), Thresholds(), 1.5, 0)


def test_a_million_items_route_in_well_under_a_second_of_cpu() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    clf = rng.dirichlet([0.3] * 4, size=n)
    members = np.stack([clf] * 5)
    votes = Votes.from_llm(rng.integers(-1, 4, n), rng.random(n), clf, members)
    start = time.process_time()  # CPU time: the 2 shared cores make wall time noisy
    result = route(votes, Thresholds(0.7, 0.7), 0.05, rng=0)
    assert time.process_time() - start < 2.0  # measured 0.34 s; a Python loop takes minutes
    assert result.route.shape == (n,)


class World:
    """Candidates with LLM confidence in [0.5, 1], classifier probability in [1/3, 1] and
    P(agreed label right) = 1 - 0.3 ((2 - u - v) / 2)^2: 1.0 at the top, 0.7 at the bottom,
    about 0.96 over the whole top half of both ranks. Truth by a large sample."""

    def __init__(self) -> None:
        self.big = self.draw(400_000, np.random.default_rng(123))

    @staticmethod
    def draw(m: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        u, v = rng.random(m), rng.random(m)
        p = 1 - 0.3 * ((2 - u - v) / 2) ** 2
        return 0.5 + 0.5 * u, 1 / 3 + 2 / 3 * v, rng.random(m) < p, p

    def precision_and_share(self, t: Thresholds) -> tuple[float, float]:
        llm, clf, _, p = self.big
        inside = (llm >= t.llm) & (clf >= t.clf)
        return float(p[inside].mean()), float(inside.mean())

    def evidence(self, m: int, seed: int) -> Evidence:
        llm, clf, correct, _ = self.draw(m, np.random.default_rng(seed))
        return Evidence(llm, clf, correct, np.ones(m, dtype=bool))


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def test_fitted_thresholds_reach_the_target_on_calibrated_data(world: World) -> None:
    fit = fit_thresholds(world.evidence(3_000, seed=1), RoutingConfig(target_precision=0.95))
    precision, share = world.precision_and_share(fit)
    assert fit.fitted and fit.accepts_any and fit.lower_bound >= 0.95
    assert precision >= 0.95
    assert share > 0.3  # not needlessly strict: the best region at exactly 0.95 takes 0.56
    assert fit.evidence == 3_000 and fit.correct <= fit.checked <= 3_000


def test_fitted_thresholds_are_rarely_too_loose_over_many_draws(world: World) -> None:
    config = RoutingConfig(target_precision=0.95, confidence_level=0.95)
    fits = [fit_thresholds(world.evidence(1_000, seed=s), config) for s in range(100)]
    too_loose = [f for f in fits if f.fitted and world.precision_and_share(f)[0] < 0.95]
    assert len(too_loose) <= 8  # family-wise error at most 5 % by construction
    assert sum(f.fitted for f in fits) >= 60  # and 1,000 audits usually suffice (measured 73)


def test_too_little_audited_evidence_keeps_routing_conservative(world: World) -> None:
    config = RoutingConfig(min_evidence=30)
    thin = fit_thresholds(world.evidence(20, seed=2), config)
    assert not thin.fitted and not thin.accepts_any and "min_evidence" in thin.note
    # thousands of perfect but non-audited reviews do not count towards the bound
    audits, m = world.evidence(20, seed=2), 5_000
    both = Evidence(
        np.concatenate([audits.llm_conf, np.ones(m)]),
        np.concatenate([audits.clf_prob, np.ones(m)]),
        np.concatenate([audits.correct, np.ones(m, dtype=bool)]),
        np.concatenate([audits.audited, np.zeros(m, dtype=bool)]),
    )
    assert fit_thresholds(both, config).evidence == 20
    assert not fit_thresholds(both, config).fitted
    assert Thresholds().to_json()["llm"] is None


def test_poor_agreement_is_never_certified() -> None:
    rng = np.random.default_rng(4)
    m = 5_000
    evidence = Evidence(rng.random(m), rng.random(m), rng.random(m) < 0.85, np.ones(m, bool))
    fit = fit_thresholds(evidence, RoutingConfig(target_precision=0.95))
    assert not fit.fitted and "reaches the target" in fit.note


def test_evidence_from_records_defaults_to_audited() -> None:
    ev = Evidence.from_records([(0.9, 0.8, True), (0.7, 0.6, False, False)])
    assert ev.llm_conf.tolist() == [0.9, 0.7] and ev.clf_prob.tolist() == [0.8, 0.6]
    assert ev.correct.tolist() == [True, False] and ev.audited.tolist() == [True, False]
    assert Evidence.from_records([]).correct.shape == (0,)


def test_priority_rises_with_doubt_and_with_what_the_answer_settles() -> None:
    p_wrong = np.array([0.1, 0.5, 0.5, 0.9, 0.0])
    similar = np.array([0, 0, 10, 0, 50])
    priority = review_priority(p_wrong, similar)
    assert np.argsort(-priority).tolist() == [2, 3, 1, 0, 4]
    assert priority[4] == 0.0  # a label that cannot be wrong is not worth a look
    damped = review_priority(p_wrong, similar, density_power=0.0)
    assert np.array_equal(damped, p_wrong)
    with pytest.raises(ValueError, match="match"):
        review_priority(p_wrong, similar[:2])


def test_unlabelled_in_cell_counts_other_unlabelled_items_of_the_same_cell() -> None:
    rng = np.random.default_rng(5)
    cells, unlabelled = rng.integers(0, 7, 300), rng.random(300) < 0.6
    items = rng.choice(300, 40, replace=False)
    expected = [
        sum(unlabelled[j] and cells[j] == cells[i] for j in range(300) if j != i) for i in items
    ]
    assert unlabelled_in_cell(cells, unlabelled, items).tolist() == expected
