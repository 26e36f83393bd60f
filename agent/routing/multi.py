"""Routing and estimates of multi-label projects, on (item, label) decisions.

An item's LLM set is auto-accepted when both members give it a high chance of being exactly
right (each member's P(set right), its labels taken as independent) above thresholds fitted on
uniform random audits of the items the LLM answered, so what a region is worth is measured,
not hoped, with a lower confidence bound (`fit_set_thresholds`). Until the audits certify
thresholds nothing is auto-accepted. Otherwise the item goes to a person, and the
suggestion names the labels in doubt and why. The headline
estimate is exact-set accuracy, a mean of right/wrong per item, so it is the same
prediction-powered estimator as single-label (`agent.routing.ppi`); micro/macro F1 of the
audited machine sets stand beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.config import RoutingConfig
from agent.routing.bounds import (
    QUANTILE_LEVELS,
    fixed_sequence,
    lower_bound,
    proportion_interval,
)
from agent.routing.ppi import ppi_accuracy_from_moments
from agent.routing.thresholds import Thresholds
from agent.types import LabelSet

AUDIT = "audit"  # queue reason of a uniform random audit of an LLM-answered item
AUDIT_META = "multi_final_audit"
# store meta of projects routed before the audit entries kept their evidence: rows [key, p_llm,
# p_clf, auto, LLM set, audited] of every LLM-answered item (read, no longer written)
CANDIDATES_META = "multi_candidates"
# Threshold chains: the LLM's threshold loosens along each, the classifier's stays at one of
# these quantiles of its P(set right) on the audits (it vetoes the sets it doubts most).
_CLF_FLOORS = (0.0, 0.1, 0.25, 0.5)


@dataclass(frozen=True)
class SetRoute:
    """Who settles one item: `auto` or a person (`reason`), the proposed set, the labels in
    doubt and a short why for each."""

    auto: bool
    reason: str
    proposed: tuple[str, ...]
    doubt: dict[str, str]


def route_set(
    llm: np.ndarray | None, clf: np.ndarray, label_set: LabelSet, sure: float,
    thresholds: Thresholds | None = None,
) -> SetRoute:  # fmt: skip
    """Route one item from the LLM's P(label in set) (C,) (None: abstained or not asked) and
    the classifier's (C,): auto when both members' P(the LLM's set is right) reach the
    certified `thresholds` (None: none certified); else the labels in doubt, each with why
    (`sure`: how far from 0.5 a member's P must lie for its call on a label to count as sure)."""
    names = label_set.names
    if llm is None:
        clf_in = clf >= 0.5
        proposed = tuple(n for n, i in zip(names, clf_in) if i) or (names[int(clf.argmax())],)
        return SetRoute(False, "llm_abstain", proposed, {})
    proposed = tuple(n for n, i in zip(names, llm >= 0.5) if i)
    p_llm, p_clf = set_confidences(llm, clf)
    t = thresholds or Thresholds()
    if t.accepts_any and p_llm >= t.llm and p_clf >= t.clf:
        return SetRoute(True, "auto", proposed, {})
    doubt = {n: why for c, n in enumerate(names)
             if (why := _doubt(float(llm[c]), float(clf[c]), sure))}  # fmt: skip
    if not doubt:  # every label looks sure, the set as a whole does not clear the thresholds
        weakest = int(np.argmin(np.where(llm >= 0.5, clf, 1.0 - clf)))
        doubt[names[weakest]] = (f"set_unsure: LLM {llm[weakest]:.2f}, classifier "
                                 f"{clf[weakest]:.2f}; set P(right) LLM {p_llm:.2f}, "
                                 f"classifier {p_clf:.2f} {_short_of(t)}")  # fmt: skip
    kinds = {why.split(":")[0] for why in doubt.values()}
    reason = next(k for k in ("disagree", "llm_unsure", "clf_unsure", "set_unsure") if k in kinds)
    return SetRoute(False, reason, proposed, doubt)


def _short_of(t: Thresholds) -> str:
    if not t.accepts_any:
        return "(no thresholds certified by audits yet)"
    return f"(thresholds {t.llm:.2f}, {t.clf:.2f})"


def set_confidences(llm: np.ndarray, clf: np.ndarray) -> tuple[float, float]:
    """Each member's P(the LLM's set, llm >= 0.5, is exactly right), labels independent:
    (LLM, classifier). The product makes a set of several labels as doubtful as it is."""
    inside = llm >= 0.5
    one = np.where(inside, llm, 1.0 - llm)
    other = np.where(inside, clf, 1.0 - clf)
    return float(np.prod(np.clip(one, 1e-6, 1.0))), float(np.prod(np.clip(other, 1e-6, 1.0)))


@dataclass(frozen=True)
class SetEvidence:
    """The uniform random audits of LLM-answered items that people answered (m,): each
    member's P(set right) when the item was routed, and whether the LLM's set was exactly
    the person's."""

    p_llm: np.ndarray
    p_clf: np.ndarray
    right: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[list[Any]], truth: dict[int, str]) -> SetEvidence:
        """From rows [key, p_llm, p_clf, auto, LLM set, audited] (`audit_rows`) and people's
        sets (key -> encoded set): the audited rows people have answered."""
        used = [r for r in rows if r[5] and int(r[0]) in truth]
        cols = [np.array([r[i] for r in used], dtype=float) for i in (1, 2)]
        right = np.array([truth[int(r[0])] == r[4] for r in used], dtype=bool)
        return cls(cols[0], cols[1], right)


def fit_set_thresholds(
    e: SetEvidence, config: RoutingConfig, corpus_target: float | None = None
) -> Thresholds:
    """The loosest (LLM, classifier) P(set right) thresholds that the audits certify; nothing
    below `config.min_evidence` audits.

    Without `corpus_target`: the region's precision lower bound must reach
    `config.target_precision`. With it: the LLM-answered items as routed (people's sets right,
    the region's sets as they are) must be right at `corpus_target` or more: one minus the
    upper bound of the share of audits that fall in the region *and* are wrong (a binomial
    share of a uniform sample, so one exact bound). Regions are tested strict -> loose along
    chains (`_chain`) by fixed-sequence testing, Bonferroni over chains, as single-label's;
    the largest passing region wins."""
    m = len(e.right)
    if m < config.min_evidence:
        return Thresholds(evidence=m, note=f"{m} audits < min_evidence {config.min_evidence}")
    level = 1.0 - (1.0 - config.confidence_level) / len(_CLF_FLOORS)
    target = config.target_precision if corpus_target is None else corpus_target
    best: tuple[int, float, float, float, int] | None = None  # (n, bound, t_llm, t_clf, k)
    for floor in _CLF_FLOORS:
        pairs = _chain(e.p_llm, e.p_clf, floor)
        inside = np.array([(e.p_llm >= a) & (e.p_clf >= b) for a, b in pairs])  # (s, m)
        n, k = inside.sum(axis=1), (inside & e.right).sum(axis=1)
        bound, testable = _bounds(n, k, m, (target, corpus_target is not None, level))
        # a region holding no audit accepts nothing: skipped like one too thin to pass
        for i in np.flatnonzero(fixed_sequence(bound >= target, testable & (n > 0))):
            if best is None or (int(n[i]), bound[i]) > best[:2]:
                best = (int(n[i]), float(bound[i]), *pairs[i], int(k[i]))
    if best is None:
        return Thresholds(evidence=m, note=f"no region of {m} audits reaches the target")
    n_in, low, t_llm, t_clf, k_in = best
    note = f"{k_in}/{n_in} audits in the region right; bound {low:.3f} at level {level:.4f}"
    return Thresholds(t_llm, t_clf, True, low, n_in, k_in, m, note)


def _bounds(
    n: np.ndarray, k: np.ndarray, m: int, how: tuple[float, bool, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(lower bounds, whether each region could pass at all) of regions (s,) holding n of the
    m audits, k of them right: their precision, or (`corpus`) the routed items' accuracy.
    `how`: (target, corpus, level)."""
    target, corpus, level = how
    if not corpus:
        return lower_bound(k, n, level), lower_bound(n, n, level) >= target
    wrong_high = proportion_interval(n - k, np.full_like(n, m), 2 * level - 1)[1]
    return 1.0 - wrong_high, np.ones(len(n), dtype=bool)


def _chain(p_llm: np.ndarray, p_clf: np.ndarray, floor: float) -> list[tuple[float, float]]:
    """Threshold pairs strict -> loose: the LLM's at falling quantiles of its P(set right), the
    classifier's fixed at quantile `floor` of its own (0: no objection counts)."""
    q_llm = np.quantile(p_llm, QUANTILE_LEVELS, method="inverted_cdf").tolist()
    t_clf = float(np.quantile(p_clf, floor, method="inverted_cdf")) if floor > 0 else 0.0
    pairs = [(float(t), t_clf) for t in q_llm]
    return [p for i, p in enumerate(pairs) if i == 0 or p != pairs[i - 1]]


def _doubt(p_llm: float, p_clf: float, sure: float) -> str:
    """Why one label is in doubt ("" when it is settled)."""
    scores = f"LLM {p_llm:.2f}, classifier {p_clf:.2f}"
    if (p_llm >= 0.5) != (p_clf >= 0.5):
        return f"disagree: {scores}"
    if max(p_llm, 1.0 - p_llm) < sure:
        return f"llm_unsure: {scores}"
    if max(p_clf, 1.0 - p_clf) < sure:
        return f"clf_unsure: {scores}"
    return ""


def set_p_right(llm: np.ndarray | None, clf: np.ndarray, proposed: tuple[str, ...],
                label_set: LabelSet) -> float:  # fmt: skip
    """P(the proposed set is exactly right): per label, the mean of the two members' chance
    that the proposed in/out call is right, multiplied over labels (independence)."""
    inside = np.array([n in proposed for n in label_set.names])
    p = clf if llm is None else (llm + clf) / 2.0
    agree = np.where(inside, p, 1.0 - p)
    return float(np.prod(np.clip(agree, 1e-6, 1.0)))


# ---- the estimate --------------------------------------------------------------------------
def exact_set_estimate(
    items: int, human: int, audit: dict[str, Any] | None, truth: dict[int, str], level: float
) -> dict[str, Any]:
    """Exact-set corpus accuracy: human sets count as right (audited ones too); the machine
    sets nobody checked are measured by the final audit (`audit`: population size, mean and
    var of P(right), draws [key, machine set, p]) against people's sets in `truth` (key ->
    encoded set). Without audit answers the machine part is anywhere in [0, 1] and the value
    is None ("unknown")."""
    machine = items - human
    draws = [d for d in (audit or {}).get("draws", []) if int(d[0]) in truth]
    if machine <= 0:
        return {"value": 1.0, "low": 1.0, "high": 1.0, "method": "all human", "audits": 0,
                "level": level}  # fmt: skip
    if not draws or audit is None:
        return {"value": None, "low": human / items, "high": 1.0, "method": "unknown",
                "audits": 0, "level": level}  # fmt: skip
    correct = np.array([truth[int(k)] == s for k, s, _ in draws], dtype=np.float64)
    predicted = np.array([float(p) for _, _, p in draws])
    est = ppi_accuracy_from_moments(correct, predicted, None, int(audit["population"]),
                                    float(audit["mean"]), float(audit["var"]), level)  # fmt: skip
    # Audited items now carry people's sets (right); the rest of the population is estimated.
    share = (int(audit["population"]) - len(draws)) / max(items, 1)
    rest = 1.0 - share
    return {
        "value": rest + share * est.value, "low": rest + share * est.low,
        "high": rest + share * est.high, "method": "prediction-powered exact-set",
        "audits": len(draws), "level": level,
    }


def audit_f1(draws: list[tuple[str, str]], label_set: LabelSet, level: float = 0.95,
             seed: int = 0) -> dict[str, Any] | None:  # fmt: skip
    """Micro/macro F1 of machine sets against people's sets on the audited items
    [(machine, human) encoded], each with a bootstrap interval, and per-label precision and
    recall, each with an exact (Clopper-Pearson) interval; every figure is {value, low, high}.
    None without audits."""
    from agent.types import decode_label_set, label_set_vector

    if not draws:
        return None
    pred = np.array([label_set_vector(decode_label_set(m) or (), label_set) for m, _ in draws])
    gold = np.array([label_set_vector(decode_label_set(h) or (), label_set) for _, h in draws])
    rng = np.random.default_rng(seed)
    boots = [rng.integers(len(draws), size=len(draws)) for _ in range(200)]
    out: dict[str, Any] = {"audits": len(draws)}
    for name, fn in (("micro_f1", _micro_f1), ("macro_f1", _macro_f1)):
        samples = np.array([fn(pred[b], gold[b]) for b in boots])
        tail = (1.0 - level) / 2
        out[name] = {"value": fn(pred, gold), "low": float(np.quantile(samples, tail)),
                     "high": float(np.quantile(samples, 1 - tail))}  # fmt: skip
    out["per_label"] = _per_label(pred, gold, label_set, level)
    return out


def _per_label(
    pred: np.ndarray, gold: np.ndarray, label_set: LabelSet, level: float
) -> dict[str, Any]:
    """Precision and recall of each label that the audited sets hold, with the counts behind
    them (machine-given, people-given, both). Each is a proportion of audited items (the
    machine's or the people's sets holding the label), hence its binomial interval; None when
    nobody gave the label."""
    out: dict[str, Any] = {}
    for c, name in enumerate(label_set.names):
        given, truth = int(pred[:, c].sum()), int(gold[:, c].sum())
        if given or truth:
            both = int((pred[:, c] & gold[:, c]).sum())
            out[name] = {"precision": _proportion(both, given, level),
                         "recall": _proportion(both, truth, level),
                         "machine": given, "people": truth, "both": both}  # fmt: skip
    return out


def _proportion(k: int, n: int, level: float) -> dict[str, float] | None:
    """k of n as {value, low, high} with its two-sided interval at `level`; None for n = 0."""
    if n == 0:
        return None
    low, high = proportion_interval(k, n, level)
    return {"value": k / n, "low": float(low), "high": float(high)}


def _micro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float((pred & gold).sum())
    denom = float(pred.sum() + gold.sum())
    return 2 * tp / denom if denom else 1.0


def _macro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """Mean F1 over the labels that occur in the audited sets (machine or people's)."""
    tp = (pred & gold).sum(axis=0).astype(np.float64)
    denom = (pred.sum(axis=0) + gold.sum(axis=0)).astype(np.float64)
    seen = denom > 0
    return float((2 * tp[seen] / denom[seen]).mean()) if seen.any() else 1.0
