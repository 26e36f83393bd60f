"""The project's accuracy estimate, the classifier's final pass and the final audit.

The estimate is about the corpus as the project would hand it over: every item takes its
label, or its suggested label (the best machine guess) where it has none. Human labels are
taken as right. The rest is measured only on random audits, so the interval is honest:

- after the final audit (a uniform random sample of every machine-labelled item, answered by
  people): two strata, `human` and `machine`;
- before it: `human`, `auto` (auto-accepted in rounds, measured by the audits of would-be
  auto-accepts) and `rest`, which nobody has sampled yet and so counts as anywhere in [0, 1].

Only the store is read, so `status` can recompute the estimate at any time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agent.config import RoutingConfig
from agent.loop.pool import NO_LABEL
from agent.routing.bounds import (
    AccuracyEstimate,
    Stratum,
    estimate_accuracy,
    fit_classifier_threshold,
)
from agent.routing.evidence import Verdicts, collect_verdicts
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.sqlite import Store
from agent.types import Annotation, Kind, QueueEntry, Source

if TYPE_CHECKING:
    from agent.loop.session import LabelingSession

FINAL_AUDIT_CAP = 400  # a uniform sample this large measures the machine labels to +-5 %
FINAL_AUDIT_MIN = 30
AUDIT_BONUS = 10.0  # audits go before reviews: they are only unbiased when all are answered


def estimate_from_store(store: Store, routing: RoutingConfig) -> AccuracyEstimate | None:
    """Stratified estimate over every item; None for an empty project."""
    items = store.count_items()
    if items == 0:
        return None
    current = current_labels(store)
    human = sum(1 for c in current.values() if c.source in HUMAN_SOURCES and c.label is not None)
    verdicts = collect_verdicts(store, store.label_set)
    reviewed = any(c.source == Source.HUMAN.value for c in current.values())
    if not reviewed and not np.any(verdicts.reason == "audit"):
        return None  # nobody has checked anything yet (imported labels are an assumption)
    final = _audits(verdicts, "final_audit")
    if final.checked:
        strata = {"human": Stratum(human, assumed=1.0),
                  "machine": Stratum(items - human, final.checked, final.correct)}
    else:
        auto = sum(1 for c in current.values() if c.source not in HUMAN_SOURCES and c.label)
        route = _audits(verdicts, "route", eligible_only=True)
        strata = {"human": Stratum(human, assumed=1.0),
                  "auto": Stratum(auto, route.checked, route.correct),
                  "rest": Stratum(items - human - auto)}
    return estimate_accuracy(strata, level=routing.confidence_level)


def store_estimate(store: Store, routing: RoutingConfig) -> dict[str, float] | None:
    """Recompute the estimate and keep it in the store for readers that cannot (the TUI)."""
    estimate = estimate_from_store(store, routing)
    value = estimate.to_json() if estimate else None
    store.set_meta("estimated_accuracy", value)
    return value


def _audits(verdicts: Verdicts, stage: str, eligible_only: bool = False) -> Stratum:
    """Audit evidence of one stage: the machines' label checked by a person (size unused)."""
    mask = (verdicts.reason == "audit") & (verdicts.stage == stage) & (verdicts.model >= 0)
    if eligible_only:
        mask &= verdicts.eligible
    correct = int(np.sum(verdicts.model[mask] == verdicts.human[mask]))
    return Stratum(int(mask.sum()), int(mask.sum()), correct)


def final_audit_size(human_budget: int | None, machine_items: int, routing: RoutingConfig) -> int:
    """Items in the final audit: a share of the human budget (or of the cap without one)."""
    if machine_items == 0:
        return 0
    wanted = FINAL_AUDIT_CAP if human_budget is None else routing.final_audit_share * human_budget
    return int(min(machine_items, FINAL_AUDIT_CAP, max(FINAL_AUDIT_MIN, round(wanted))))


def final_pass(session: LabelingSession, round_no: int) -> dict[str, Any]:
    """Label unqueued items where the classifier is sure enough for the target; queue the rest.

    The threshold is fitted on human verdicts of the classifier's earlier votes (items picked
    as hard, so the fit errs on the strict side).
    """
    session.reload_labels()
    pool = session.pool
    unlabelled = pool.labels == NO_LABEL
    verdicts = collect_verdicts(session.store, session.label_set)
    has_vote = verdicts.model >= 0
    routing = session.config.routing
    threshold = fit_classifier_threshold(
        verdicts.model_conf[has_vote], verdicts.model[has_vote] == verdicts.human[has_vote],
        routing.target_precision, routing.confidence_level, min_evidence=routing.min_evidence,
    )
    labels, confident = threshold.apply(session.scores.probs)
    sure = np.flatnonzero(unlabelled & ~pool.queued & confident)
    unsure = np.flatnonzero(unlabelled & ~pool.queued & ~confident)
    _label_sure(session, sure, labels[sure], round_no)
    _enqueue(session, unsure, session.best_guess(), "clf_unsure", round_no)
    session.reload_labels()
    return {"labelled": int(sure.size), "left": int(unsure.size),
            "threshold": threshold.to_json()}


def final_audit(session: LabelingSession, round_no: int, size: int) -> int:
    """Queue a uniform random sample of machine-labelled items, with their suggested label
    recorded first, so that people's answers measure the machine part of the corpus."""
    machine = np.flatnonzero(~session.pool.human_mask)
    size = min(size, machine.size)
    if size == 0:
        return 0
    rng = np.random.default_rng([session.config.seed, round_no, 17])
    chosen = np.sort(rng.choice(machine, size=size, replace=False))
    best = session.best_guess()
    names = session.label_set.names
    session.store.add_annotations([
        Annotation(int(session.pool.keys[i]), names[int(best[i])], Source.MODEL, Kind.VOTE,
                   actor="best-guess", round=round_no,
                   confidence=float(session.scores.probs[i].max()),
                   meta={"stage": "final_audit", "reason": "audit"})
        for i in chosen
    ])
    _enqueue(session, chosen, best, "audit", round_no, bonus=AUDIT_BONUS)
    return size


def _label_sure(
    session: LabelingSession, positions: np.ndarray, labels: np.ndarray, round_no: int
) -> None:
    probs = session.scores.probs
    names = session.label_set.names
    session.store.add_annotations([
        Annotation(int(session.pool.keys[i]), names[int(lab)], Source.MODEL, Kind.LABEL,
                   actor="final-pass", confidence=float(probs[i].max()), round=round_no,
                   meta={"stage": "final"})
        for i, lab in zip(positions, labels)
    ])


def _enqueue(
    session: LabelingSession, positions: np.ndarray, best: np.ndarray, reason: str,
    round_no: int, bonus: float = 0.0,
) -> None:
    """Queue items by the classifier's P(wrong) (+ `bonus`), suggesting the best guess."""
    p_wrong = 1.0 - session.scores.probs[positions].max(axis=1)
    session.store.enqueue([
        QueueEntry(int(session.pool.keys[i]), reason, float(pw) + bonus, round_no,
                   session.suggestion(int(i), None, int(best[i]), float(pw)))
        for i, pw in zip(positions, p_wrong)
    ])
