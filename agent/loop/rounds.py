"""One round of the loop: select -> pre-label -> route -> accept or queue, written to the store.

Votes are written before anything acts on them, so a killed round leaves evidence, not
half-made decisions: its selected items are simply candidates again next time, and their LLM
replies come back from the cache for free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.routing.evidence import collect_verdicts
from agent.routing.route import (
    REASONS,
    Evidence,
    Route,
    RoutingResult,
    Thresholds,
    Votes,
    best_label,
    fit_thresholds,
    review_priority,
    route,
)
from agent.types import Annotation, Item, Kind, LabelDecision, QueueEntry, Source

if TYPE_CHECKING:
    from agent.labeller.labeller import Labeller
    from agent.loop.session import LabelingSession

NO_VOTE = -1
# How much an answer's reach (similar unlabelled items) counts against P(wrong) when ordering
# the queue; small, because on trec 0.1 and 0.0 reached the target with 500 labels, 0.5 with 540.
DENSITY_POWER = 0.1
REFRESH_CHUNK = 500  # queue rows per transaction when re-scoring the queue


@dataclass
class RoundStats:
    """What one round did, for the progress display and the rounds table."""

    round: int
    selected: int = 0
    llm_calls: int = 0
    auto_accepted: int = 0
    queued: int = 0
    audits: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def current_thresholds(session: LabelingSession) -> Thresholds:
    """Thresholds fitted from every audit answered so far (none: accept nothing yet)."""
    verdicts = collect_verdicts(session.store, session.label_set)
    candidates = verdicts.where((verdicts.llm >= 0) & (verdicts.llm == verdicts.model))
    evidence = Evidence(
        np.nan_to_num(candidates.llm_conf, nan=-1.0),
        candidates.model_conf,
        candidates.llm == candidates.human,
        candidates.reason == "audit",
    )
    return fit_thresholds(evidence, session.config.routing)


def run_round(
    session: LabelingSession, round_no: int, labeller: Labeller | None, n: int
) -> RoundStats:
    """Select n candidates, get the LLM's view (if any), route them, persist everything."""
    stats = RoundStats(round_no)
    positions = session.select_positions(n)
    if positions.size == 0:
        return stats
    items = [session.pool.items[i] for i in positions]
    decisions = _prelabel(session, labeller, items, positions, round_no)
    llm_label, llm_conf = _vote_arrays(session, decisions, len(items))
    thresholds = current_thresholds(session)
    result = _route(session, positions, llm_label, llm_conf, thresholds, round_no)
    _record_model_votes(session, items, positions, result, round_no)
    _apply(session, items, positions, result, decisions, round_no, labeller)
    stats.selected = len(items)
    stats.llm_calls = 0 if decisions is None else sum(not d.cached for d in decisions)
    stats.auto_accepted = int(np.sum(result.route == Route.AUTO_ACCEPT))
    stats.audits = int(np.sum(result.route == Route.AUDIT))
    stats.queued = stats.selected - stats.auto_accepted
    names = result.reason_names()
    stats.reasons = {r: int(np.sum(names == r)) for r in REASONS if np.any(names == r)}
    stats.thresholds = thresholds.to_json()
    return stats


def _prelabel(
    session: LabelingSession,
    labeller: Labeller | None,
    items: list[Item],
    positions: np.ndarray,
    round_no: int,
) -> list[LabelDecision] | None:
    """The LLM's decision on each item (None without an LLM); new votes stored at once.

    An item that already has an LLM vote (its round was interrupted before routing) keeps
    that vote: no item is ever sent to the LLM twice.
    """
    if labeller is None:
        return None
    earlier = _earlier_votes(session, items)
    fresh = [j for j, item in enumerate(items) if item.key not in earlier]
    asked = (
        labeller.label_items_sync(
            [items[j] for j in fresh], session.few_shot_examples(positions[fresh])
        )
        if fresh
        else []
    )
    session.store.add_annotations([_llm_vote(items[j], d, round_no) for j, d in zip(fresh, asked)])
    answers = dict(zip(fresh, asked))
    return [answers[j] if j in answers else earlier[item.key] for j, item in enumerate(items)]


def _earlier_votes(session: LabelingSession, items: list[Item]) -> dict[int, LabelDecision]:
    """Stored LLM votes on these items, as decisions (marked cached: nothing is paid)."""
    wanted = {item.key for item in items}
    latest = {  # one read for the whole batch; rows come oldest first, so the newest wins
        row["item_key"]: row
        for row in session.store.annotations(source="llm", kind="vote")
        if row["item_key"] in wanted
    }
    found: dict[int, LabelDecision] = {}
    for key, row in latest.items():
        meta = json.loads(row["meta"] or "{}")
        found[key] = LabelDecision(
            row["label"],
            float(row["confidence"] or 0.0),
            row["rationale"],
            meta.get("confidence_method", "stated"),
            cached=True,
            prompt_hash=row["prompt_hash"],
            model=row["actor"],
        )
    return found


def _vote_arrays(
    session: LabelingSession, decisions: list[LabelDecision] | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """LLM label index (n,) (NO_VOTE = abstain or no LLM) and confidence (n,) (NaN = none)."""
    if decisions is None:
        return np.full(n, NO_VOTE, dtype=np.int64), np.full(n, np.nan)
    labels = np.array(
        [
            session.label_set.index(d.label)
            if d.label is not None and d.label in session.label_set
            else NO_VOTE
            for d in decisions
        ],
        dtype=np.int64,
    )
    conf = np.array([d.confidence if d.label is not None else np.nan for d in decisions])
    return labels, conf


def _llm_view(d: LabelDecision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "label": d.label,
        "confidence": round(d.confidence, 4),
        "rationale": d.rationale,
        "method": d.confidence_method,
    }


def _llm_vote(item: Item, d: LabelDecision, round_no: int) -> Annotation:
    return Annotation(
        item.key,
        d.label,
        Source.LLM,
        Kind.VOTE,
        actor=d.model,
        confidence=d.confidence,
        rationale=d.rationale,
        prompt_hash=d.prompt_hash,
        round=round_no,
        meta={"confidence_method": d.confidence_method, "cached": d.cached},
    )


def _route(
    session: LabelingSession,
    positions: np.ndarray,
    llm_label: np.ndarray,
    llm_conf: np.ndarray,
    thresholds: Thresholds,
    round_no: int,
) -> RoutingResult:
    scores = session.scores
    probs, members = scores.probs[positions], scores.members[:, positions]
    zeroshot = scores.zeroshot[positions]
    if session.labeller_mode == "none":
        votes = Votes.from_zeroshot(zeroshot, probs, members)
    else:
        votes = Votes.from_llm(llm_label, llm_conf, probs, members, zeroshot)
    rng = np.random.default_rng([session.config.seed, round_no, 7])
    routing = session.config.routing
    return route(
        votes,
        thresholds,
        routing.audit_rate,
        rng,
        census_rate=routing.census_rate,
        max_audits=routing.max_audits_per_round,
    )


def _record_model_votes(
    session: LabelingSession,
    items: list[Item],
    positions: np.ndarray,
    result: RoutingResult,
    round_no: int,
) -> None:
    """The classifier's vote on each routed item, with the routing facts the estimate needs."""
    probs = session.scores.probs[positions]
    names, reasons = session.label_set.names, result.reason_names()
    session.store.add_annotations(
        [
            Annotation(
                item.key,
                names[int(probs[j].argmax())],
                Source.MODEL,
                Kind.VOTE,
                actor="committee",
                confidence=float(probs[j].max()),
                round=round_no,
                meta={
                    "stage": "route",
                    "reason": str(reasons[j]),
                    "route": Route(result.route[j]).name,
                    "eligible": bool(result.eligible[j]),
                    "candidate": bool(result.candidate[j]),
                },
            )
            for j, item in enumerate(items)
        ]
    )


def _apply(
    session: LabelingSession,
    items: list[Item],
    positions: np.ndarray,
    result: RoutingResult,
    decisions: list[LabelDecision] | None,
    round_no: int,
    labeller: Labeller | None,
) -> None:
    """Auto-accepted items get their label; the rest join the review queue by value."""
    accept = np.flatnonzero(result.route == Route.AUTO_ACCEPT)
    source = Source.LLM if labeller is not None else Source.MODEL
    session.store.add_annotations(
        [
            Annotation(
                items[j].key,
                session.label_set.names[int(result.label[j])],
                source,
                Kind.LABEL,
                actor="auto-accept",
                confidence=float(1.0 - result.p_wrong[j]),
                round=round_no,
                prompt_hash=labeller.prompt_hash if labeller is not None else "",
                meta={"reason": "agree", "stage": "route"},
            )
            for j in accept
        ]
    )
    review = np.flatnonzero(result.route != Route.AUTO_ACCEPT)
    priority = _priority(session, positions[review], result.p_wrong[review])
    priority[result.route[review] == Route.AUDIT] += 10.0  # audits first: unbiased evidence
    entries = [
        QueueEntry(
            items[j].key,
            str(result.reason_names()[j]),
            float(p),
            round_no,
            session.suggestion(
                positions[j],
                _llm_view(decisions[j] if decisions else None),
                int(result.label[j]),
                float(result.p_wrong[j]),
            ),
            _reviews_needed(session, items[j]),
        )
        for j, p in zip(review, priority)
    ]
    session.store.enqueue(entries)
    session.reload_labels()


def _priority(session: LabelingSession, positions: np.ndarray, p_wrong: np.ndarray) -> np.ndarray:
    return review_priority(
        p_wrong, session.similar_unlabelled(positions), density_power=DENSITY_POWER
    )


def _reviews_needed(session: LabelingSession, item: Item) -> int:
    """Overlap items (a seeded share) are shown to two operators, for agreement statistics."""
    rate = session.config.overlap_rate
    if rate <= 0:
        return 1
    draw = np.random.default_rng([session.config.seed, item.key, 11]).random()
    return 2 if draw < rate else 1


def refresh_queue(session: LabelingSession) -> int:
    """Re-score pending review items with the current classifier: new suggestions, priorities."""
    pending = session.store.pending()
    if not pending:
        return 0
    positions = session.pool.positions([e.item_key for e in pending])
    llm = [e.suggestion.get("llm") for e in pending]
    names = session.label_set
    llm_label = np.array(
        [names.index(v["label"]) if v and v.get("label") in names else NO_VOTE for v in llm],
        dtype=np.int64,
    )
    llm_conf = np.array(
        [v["confidence"] if v and v.get("label") in names else np.nan for v in llm], dtype=float
    )
    scores = session.scores
    votes = (
        Votes.from_zeroshot(scores.zeroshot[positions], scores.probs[positions])
        if session.labeller_mode == "none"
        else Votes.from_llm(
            llm_label, llm_conf, scores.probs[positions], zeroshot_probs=scores.zeroshot[positions]
        )
    )
    best, p_wrong = best_label(votes)
    priority = _priority(session, positions, p_wrong)
    priority[np.array([e.reason == "audit" for e in pending])] += 10.0
    entries = [
        QueueEntry(
            e.item_key,
            e.reason,
            float(priority[j]),
            e.round,
            session.suggestion(int(positions[j]), llm[j], int(best[j]), float(p_wrong[j])),
            e.reviews_needed,
        )
        for j, e in enumerate(pending)
    ]
    # Short transactions: an operator's decision never waits behind the whole queue's rewrite.
    return sum(
        session.store.enqueue(entries[i : i + REFRESH_CHUNK])
        for i in range(0, len(entries), REFRESH_CHUNK)
    )
