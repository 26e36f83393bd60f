"""Routing and estimates of multi-label projects, on (item, label) decisions.

An item is auto-accepted only when every label, in its set or out of it, is agreed by the LLM
and the classifier and both are sure of it (P >= t or <= 1 - t, t = routing.label_confidence);
otherwise it goes to a person, and the suggestion names the labels in doubt and why. The
headline estimate is exact-set accuracy, a mean of right/wrong per item, so it is the same
prediction-powered estimator as single-label (`agent.routing.ppi`); micro/macro F1 of the
audited machine sets stand beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.routing.ppi import ppi_accuracy_from_moments
from agent.types import LabelSet

AUDIT_META = "multi_final_audit"  # store meta: the population and draws of the final audit


@dataclass(frozen=True)
class SetRoute:
    """Who settles one item: `auto` or a person (`reason`), the proposed set, the labels in
    doubt and a short why for each."""

    auto: bool
    reason: str
    proposed: tuple[str, ...]
    doubt: dict[str, str]


def route_set(
    llm: np.ndarray | None, clf: np.ndarray, label_set: LabelSet, sure: float
) -> SetRoute:
    """Route one item from the LLM's P(label in set) (C,) (None: abstained or not asked) and
    the classifier's (C,)."""
    names = label_set.names
    clf_in = clf >= 0.5
    if llm is None:
        proposed = tuple(n for n, i in zip(names, clf_in) if i) or (names[int(clf.argmax())],)
        return SetRoute(False, "llm_abstain", proposed, {})
    llm_in = llm >= 0.5
    proposed = tuple(n for n, i in zip(names, llm_in) if i)
    doubt: dict[str, str] = {}
    for c, name in enumerate(names):
        why = _doubt(float(llm[c]), float(clf[c]), sure)
        if why:
            doubt[name] = why
    if not doubt:
        return SetRoute(True, "auto", proposed, {})
    kinds = {why.split(":")[0] for why in doubt.values()}
    reason = next(k for k in ("disagree", "llm_unsure", "clf_unsure") if k in kinds)
    return SetRoute(False, reason, proposed, doubt)


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
    recall; None without audits."""
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
    out["per_label"] = _per_label(pred, gold, label_set)
    return out


def _per_label(pred: np.ndarray, gold: np.ndarray, label_set: LabelSet) -> dict[str, Any]:
    """Precision and recall of each label that the audited sets hold (point values, with
    the counts behind them: machine-given, people-given, both)."""
    out: dict[str, Any] = {}
    for c, name in enumerate(label_set.names):
        given, truth = int(pred[:, c].sum()), int(gold[:, c].sum())
        if given or truth:
            both = int((pred[:, c] & gold[:, c]).sum())
            out[name] = {"precision": both / given if given else None,
                         "recall": both / truth if truth else None,
                         "machine": given, "people": truth, "both": both}  # fmt: skip
    return out


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
