"""The end of a job: the classifier labels what it is sure of, and a final audit measures it.

The final audit is a random sample of every machine-labelled item (weighted toward the least
sure, every item possible), answered by people; its verdicts are what `routing.accuracy` turns
into the corpus estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.loop.entries import queue_entries, stored_llm_views
from agent.loop.state import LoopState
from agent.routing.calibration import CALIBRATION_META
from agent.routing.ppi import AUDIT_POPULATION, active_draw_probabilities
from agent.routing.priority import AUDIT_BONUS
from agent.routing.thresholds import fit_classifier_threshold
from agent.types import NO_LABEL, Annotation, Kind, Source


def final_pass(state: LoopState, round_no: int) -> dict[str, Any]:
    """Label unqueued items where the classifier is sure enough for the target; queue the rest.

    The threshold is fitted on human verdicts of the classifier's earlier votes (items picked
    as hard, so the fit errs on the strict side).
    """
    state.reload_labels()
    pool = state.pool
    unlabelled = pool.labels == NO_LABEL
    verdicts = state.verdicts()
    has_vote = verdicts.model >= 0
    routing = state.config.routing
    threshold = fit_classifier_threshold(
        verdicts.model_conf[has_vote], verdicts.model[has_vote] == verdicts.human[has_vote],
        routing.target_precision, routing.confidence_level, min_evidence=routing.min_evidence,
    )
    labels, confident = threshold.apply(state.scores.probs)
    sure = np.flatnonzero(unlabelled & ~pool.queued & confident)
    unsure = np.flatnonzero(unlabelled & ~pool.queued & ~confident)
    state.store.set_meta(CALIBRATION_META, state.calibration().to_json())
    _label_sure(state, sure, labels[sure], round_no)
    _enqueue(state, unsure, state.best_guess(), "clf_unsure", round_no)
    state.reload_labels()
    return {"labelled": int(sure.size), "left": int(unsure.size),
            "threshold": threshold.to_json()}


def final_audit(state: LoopState, round_no: int, size: int) -> int:
    """Queue `size` draws of machine-labelled items, with their handed-over label recorded
    first, so that people's answers measure the machine part of the corpus.

    Draws are weighted toward the items whose label is least sure (half the chance spread
    evenly, so none is left out) and made with replacement: each draw's chance and the
    predicted P(right) go with its vote, with the population's predictions (the last
    audit's also into the store), for the prediction-powered estimate (`agent.routing.ppi`).
    An item drawn twice is asked once and counts twice. Returns the number of items queued."""
    machine = np.flatnonzero(~state.pool.human_mask)
    if size == 0 or machine.size == 0:
        return 0
    p_right = state.p_right()[machine]
    chance = _draw_chances(p_right, state.config.routing.estimator)
    rng = np.random.default_rng([state.config.seed, round_no, 17])
    drawn, times = np.unique(rng.choice(machine.size, size=size, p=chance), return_counts=True)
    best = state.best_guess()
    names = state.label_set.names
    population = {"items": int(machine.size), "mean_p_right": float(p_right.mean()),
                  "var_p_right": float(p_right.var())}  # fmt: skip
    state.store.set_meta(AUDIT_POPULATION, {"batch": round_no, "draws": int(size), **population})
    state.store.add_annotations([
        Annotation(int(state.pool.keys[machine[j]]), names[int(best[machine[j]])], Source.MODEL,
                   Kind.VOTE, actor="best-guess", round=round_no, confidence=float(p_right[j]),
                   meta={"stage": "final_audit", "reason": "audit", "batch": round_no,
                         "p_right": float(p_right[j]), "draw_chance": float(chance[j]),
                         "draws": int(k), "population": population})
        for j, k in zip(drawn, times)
    ])
    _enqueue(state, machine[drawn], best, "audit", round_no, bonus=AUDIT_BONUS)
    return int(drawn.size)


def _draw_chances(p_right: np.ndarray, estimator: str) -> np.ndarray:
    """Each machine label's chance of being drawn (M,): toward the least sure for the
    prediction-powered estimate, which weighs the draws back; uniform for the exact one."""
    if estimator == "prediction-powered":
        return active_draw_probabilities(p_right)
    return np.full(p_right.size, 1.0 / p_right.size)


def _label_sure(
    state: LoopState, positions: np.ndarray, labels: np.ndarray, round_no: int
) -> None:
    # The stored confidence is P(right) as people's labels measure it, not the raw maximum.
    confidence = state.calibration().apply(state.scores.probs[positions].max(axis=1))
    names = state.label_set.names
    for part in _batches(len(positions)):  # bounded memory: a million labels are many objects
        state.store.add_annotations([
            Annotation(int(state.pool.keys[i]), names[int(lab)], Source.MODEL, Kind.LABEL,
                       actor="final-pass", confidence=float(p), round=round_no,
                       meta={"stage": "final"})
            for i, lab, p in zip(positions[part], labels[part], confidence[part])
        ])


def _batches(n: int, size: int = 10_000) -> list[slice]:
    """Slices covering range(n) in pieces of `size`."""
    return [slice(start, start + size) for start in range(0, n, size)]


def _enqueue(
    state: LoopState, positions: np.ndarray, best: np.ndarray, reason: str,
    round_no: int, bonus: float = 0.0,
) -> None:
    """Queue items by their best guess's P(wrong) (+ `bonus`), suggesting the best guess: the
    P(wrong) shown is the one of the label suggested, which the classifier's alone is not
    where the LLM's vote moved the guess."""
    p_wrong = 1.0 - state.p_right()[positions]
    for part in _batches(len(positions)):
        at, wrong = positions[part], p_wrong[part]
        reasons = [reason] * len(at)
        views = stored_llm_views(state, at)
        entries = queue_entries(
            state, at, reasons, wrong + bonus, best[at], wrong, round_no, views
        )
        state.store.enqueue(entries)
