"""The project's accuracy estimate and the classifier's final pass, from the store's evidence.

The corpus is cut into strata by where each item's label came from. Human labels are taken
as right; every machine stratum is measured only on its random audits, so its interval is
honest, and a stratum nobody has audited yet counts as anywhere in [0, 1].

    human        labelled by a person (review, audit answer, imported gold)
    auto         auto-accepted in a round (LLM + classifier agreed, or zero-shot + classifier)
    classifier   labelled by the classifier's final pass
    unlabelled   no label yet: scored as the classifier's current guess
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.estimate import AccuracyEstimate, Stratum, estimate_accuracy, fit_classifier_threshold
from agent.evidence import Verdicts, collect_verdicts
from agent.pool import NO_LABEL
from agent.review_queue import QueueEntry
from agent.types import Annotation, Kind, Source

if TYPE_CHECKING:
    from agent.session import LabelingSession

FINAL_AUDIT_CAP = 200  # audits per final-pass stratum: enough for a +-7 % interval


def estimate_corpus_accuracy(session: LabelingSession) -> AccuracyEstimate | None:
    """Stratified estimate over every item in the project; None for an empty project."""
    pool = session.pool
    if len(pool) == 0:
        return None
    verdicts = collect_verdicts(session.store, session.label_set)
    stages = _label_stages(session)
    human = pool.human_mask
    unlabelled = pool.labels == NO_LABEL
    final = np.array([stages.get(int(k)) == "final" for k in pool.keys]) & ~human & ~unlabelled
    auto = ~human & ~unlabelled & ~final
    config = session.config.routing
    strata = {
        "human": Stratum(int(human.sum()), assumed=1.0),
        "auto": _audited(int(auto.sum()), verdicts, "route", eligible_only=True),
        "classifier": _audited(int(final.sum()), verdicts, "final"),
        "unlabelled": _audited(int(unlabelled.sum()), verdicts, "final_rest"),
    }
    return estimate_accuracy(strata, level=config.confidence_level)


def _audited(size: int, verdicts: Verdicts, stage: str, eligible_only: bool = False) -> Stratum:
    """A stratum with the audits that speak for it: the machines' label checked by a person."""
    mask = (verdicts.reason == "audit") & (verdicts.stage == stage) & (verdicts.model >= 0)
    if eligible_only:
        mask &= verdicts.eligible
    checked = int(mask.sum())
    correct = int(np.sum(verdicts.model[mask] == verdicts.human[mask]))
    return Stratum(size, checked, correct)


def _label_stages(session: LabelingSession) -> dict[int, str]:
    """Item key -> the stage of its machine label ('route' or 'final')."""
    out: dict[int, str] = {}
    for row in session.store.annotations(source=Source.MODEL.value, kind=Kind.LABEL.value):
        out[row["item_key"]] = json.loads(row["meta"] or "{}").get("stage", "route")
    return out


def final_pass(session: LabelingSession, round_no: int) -> dict[str, Any]:
    """Label unqueued items where the classifier is sure enough for the target; queue the rest.

    The threshold is fitted on human verdicts of the classifier's earlier votes; a random
    slice of each outcome (labelled / left) is queued as an audit so the estimate can measure it.
    """
    session.reload_labels()
    pool = session.pool
    unlabelled = pool.labels == NO_LABEL
    if not unlabelled.any():
        return {"labelled": 0, "left": 0, "threshold": None}
    verdicts = collect_verdicts(session.store, session.label_set)
    has_vote = verdicts.model >= 0
    threshold = fit_classifier_threshold(
        verdicts.model_conf[has_vote],
        verdicts.model[has_vote] == verdicts.human[has_vote],
        session.config.routing.target_precision,
        session.config.routing.confidence_level,
        min_evidence=session.config.routing.min_evidence,
    )
    labels, confident = threshold.apply(session.scores.probs)
    sure_mask = unlabelled & ~pool.queued & confident
    sure, unsure = np.flatnonzero(sure_mask), np.flatnonzero(unlabelled & ~sure_mask)
    rng = np.random.default_rng([session.config.seed, round_no, 13])
    _label_sure(session, sure, labels[sure], round_no)
    _queue_with_audit(session, sure, "final", rng, round_no)
    _queue_with_audit(session, unsure, "final_rest", rng, round_no)
    session.reload_labels()
    return {"labelled": int(sure.size), "left": int(unsure.size), "threshold": threshold.to_json()}


def _label_sure(
    session: LabelingSession, positions: np.ndarray, labels: np.ndarray, round_no: int
) -> None:
    probs = session.scores.probs
    names = session.label_set.names
    session.store.add_annotations(
        [
            Annotation(
                int(session.pool.keys[i]),
                names[int(lab)],
                Source.MODEL,
                Kind.LABEL,
                actor="final-pass",
                confidence=float(probs[i].max()),
                round=round_no,
                meta={"stage": "final"},
            )
            for i, lab in zip(positions, labels)
        ]
    )


def _queue_with_audit(
    session: LabelingSession,
    positions: np.ndarray,
    stage: str,
    rng: np.random.Generator,
    round_no: int,
) -> None:
    """Audit a random slice of `positions`; unsure ones not audited wait for review as well."""
    if positions.size == 0:
        return
    rate = session.config.routing.audit_rate
    n_audit = min(positions.size, FINAL_AUDIT_CAP, max(1, round(rate * positions.size)))
    audit = rng.choice(positions, size=n_audit, replace=False)
    review = np.empty(0, np.int64)
    if stage == "final_rest":  # the unsure wait for review; those already queued keep their place
        review = np.setdiff1d(positions[~session.pool.queued[positions]], audit)
    probs = session.scores.probs
    names = session.label_set.names
    votes, entries = [], []
    for reason, group, bonus in (("audit", audit, 10.0), ("clf_unsure", review, 0.0)):
        p_wrong = 1.0 - probs[group].max(axis=1) if group.size else np.empty(0)
        for i, pw in zip(group, p_wrong):
            key, best = int(session.pool.keys[i]), int(probs[i].argmax())
            votes.append(
                Annotation(
                    key,
                    names[best],
                    Source.MODEL,
                    Kind.VOTE,
                    actor="committee",
                    confidence=float(probs[i].max()),
                    round=round_no,
                    meta={"stage": stage, "reason": reason, "eligible": stage == "final"},
                )
            )
            entries.append(
                QueueEntry(
                    key,
                    reason,
                    float(pw) + bonus,
                    round_no,
                    session.suggestion(int(i), None, best, float(pw)),
                )
            )
    session.store.add_annotations(votes)
    session.store.enqueue(entries)
