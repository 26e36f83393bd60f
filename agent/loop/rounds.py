"""One round of the loop: select -> pre-label -> route -> accept or queue, written to the store.

Votes are written before anything acts on them, so a killed round leaves evidence, not
half-made decisions: its selected items are simply candidates again next time, and their LLM
replies come back from the cache for free.

An item whose LLM call failed after its retries gets no vote: its failure is logged in the
store, it is routed as if the LLM had not answered (the classifier and people cover it), and
the first round of the next run asks the LLM again about every such item still waiting for
review, refreshing its queue entry with the answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.labeller.outcomes import call_failed
from agent.loop.entries import llm_view, queue_entries, vote_decision
from agent.loop.resume import PLAN_KEY
from agent.loop.state import LoopState
from agent.routing.priority import AUDIT_BONUS, AUDIT_REASONS, DENSITY_POWER, review_priority
from agent.routing.route import REASONS, Route, RoutingResult, route
from agent.routing.thresholds import Evidence, Thresholds, fit_thresholds
from agent.routing.trust import LLM_AUDIT
from agent.routing.votes import best_label
from agent.types import NO_LABEL, Annotation, Item, Kind, LabelDecision, Source

if TYPE_CHECKING:
    from agent.labeller.labeller import Labeller

REFRESH_CHUNK = 500  # queue rows per transaction when re-scoring the queue
PROCESS_START = time.time()  # without a run plan, failures logged before this are a past run's


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
    llm_note: str = ""  # what audits say of the LLM, and whether it was asked this round
    llm_failed: int = 0  # items whose LLM call failed after its retries (asked again next run)
    llm_retried: int = 0  # items of an earlier run's failed calls asked again this round

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def current_thresholds(state: LoopState) -> Thresholds:
    """Thresholds fitted from every audit answered so far (none: accept nothing yet)."""
    return fit_thresholds(Evidence.from_verdicts(state.verdicts()), state.config.routing)


def run_round(
    state: LoopState,
    round_no: int,
    labeller: Labeller | None,
    n: int,
    strategy: str | None = None,
) -> RoundStats:
    """Select n candidates (by `strategy`, default the configured one), get the LLM's view
    (if any), route them, persist everything.

    With an LLM configured but `labeller` None (audits show it adds nothing), the items go to
    people as 'llm_off', ordered by the classifier alone."""
    stats = RoundStats(round_no)
    stats.llm_retried, stats.llm_failed = retry_failed_items(state, labeller, round_no)
    stats.llm_calls = stats.llm_retried - stats.llm_failed
    positions = state.select_positions(n, strategy)
    if positions.size == 0:
        return stats
    items = state.items_at(positions)
    decisions = _prelabel(state, labeller, items, positions, round_no)
    llm_label, llm_conf = _vote_arrays(state, decisions, len(items))
    thresholds = current_thresholds(state)
    result = _route(state, positions, llm_label, llm_conf, thresholds, round_no)
    failed = np.zeros(len(items), dtype=np.bool_)
    if decisions is not None:
        failed[:] = [call_failed(d) for d in decisions]
        _mark_llm_audits(state, result, round_no, np.logical_not(failed))
    elif state.labeller_mode == "llm":
        result.reason[:] = REASONS.index("llm_off")
    _record_model_votes(state, items, positions, result, round_no)
    _apply(state, items, positions, result, decisions, llm_label, round_no, labeller)
    stats.selected = len(items)
    fresh = 0 if decisions is None else sum(not d.cached for d in decisions)
    stats.llm_calls += fresh - int(failed.sum())
    stats.llm_failed += int(failed.sum())
    stats.auto_accepted = int(np.sum(result.route == Route.AUTO_ACCEPT))
    stats.audits = int(np.sum(result.route == Route.AUDIT))
    stats.queued = stats.selected - stats.auto_accepted
    names = result.reason_names()
    stats.reasons = {r: int(np.sum(names == r)) for r in REASONS if np.any(names == r)}
    stats.thresholds = thresholds.to_json()
    return stats


def _prelabel(
    state: LoopState,
    labeller: Labeller | None,
    items: list[Item],
    positions: np.ndarray,
    round_no: int,
) -> list[LabelDecision] | None:
    """The LLM's decision on each item (None without an LLM); new votes stored at once.

    An item that already has an LLM vote (its round was interrupted before routing) keeps
    that vote, and only items claimed in the store (`claim_for_llm`) are sent: an item that
    another live worker claimed gets that worker's answer. No item is sent to the LLM twice.
    """
    from agent.loop.claims import answers_of_others

    if labeller is None:
        return None
    earlier = _earlier_votes(state, items)
    unvoted = [item.key for item in items if item.key not in earlier]
    claimed = set(state.store.claim_for_llm(unvoted, state.holder)) if unvoted else set()
    fresh = [j for j, item in enumerate(items) if item.key in claimed]
    asked = _ask(state, labeller, [items[j] for j in fresh], positions[fresh], round_no)
    answers = dict(zip(fresh, asked))
    earlier |= answers_of_others(state.store, sorted(set(unvoted) - claimed), vote_decision)
    return [answers[j] if j in answers else earlier[item.key] for j, item in enumerate(items)]


def _ask(
    state: LoopState,
    labeller: Labeller,
    items: list[Item],
    positions: np.ndarray,
    round_no: int,
) -> list[LabelDecision]:
    """Ask the LLM about claimed items; store the answers as votes and log the failed calls
    (no vote: the item counts as not asked, and the next run asks again)."""
    if not items:
        return []
    asked = labeller.label_items_sync(items, state.few_shot_examples(positions))
    votes = [_llm_vote(item, d, round_no) for item, d in zip(items, asked) if not call_failed(d)]
    state.store.add_annotations(votes)
    failures = {item.key: d.rationale for item, d in zip(items, asked) if call_failed(d)}
    state.store.record_llm_failures(failures, model=labeller.backend.model, round_no=round_no)
    return asked


def retry_failed_items(
    state: LoopState, labeller: Labeller | None, round_no: int
) -> tuple[int, int]:
    """Ask the LLM again about items whose call failed in an earlier run and that still wait
    for review; their queue entries get the answer. Returns (items asked, calls failed again).

    Only failures logged before this run began are retried, so a run asks each at most once."""
    if labeller is None:
        return 0, 0
    keys = retryable_failures(state)
    claimed = state.store.claim_for_llm(keys, state.holder) if keys else []
    if not claimed:
        return 0, 0
    positions = state.pool.positions(claimed)
    asked = _ask(state, labeller, state.items_at(positions), positions, round_no)
    refresh_queue(state, claimed)
    return len(asked), sum(call_failed(d) for d in asked)


def retryable_failures(state: LoopState) -> list[int]:
    """Keys of items still waiting for review whose LLM call failed before this run began."""
    failed = state.store.failed_llm_items(before=_run_started(state))
    if not failed:
        return []
    return [e.item_key for e in state.store.pending() if e.item_key in failed]


def _run_started(state: LoopState) -> float:
    """When the running job began (its plan's start), else when this process did."""
    plan = state.store.get_meta(PLAN_KEY)
    started = plan.get("started_at") if isinstance(plan, dict) else None
    return float(started) if isinstance(started, int | float) else PROCESS_START


def _earlier_votes(state: LoopState, items: list[Item]) -> dict[int, LabelDecision]:
    """Stored LLM votes on these items, as decisions (marked cached: nothing is paid)."""
    latest = state.store.latest_votes(Source.LLM.value, [item.key for item in items])
    return {key: vote_decision(row) for key, row in latest.items()}


def _vote_arrays(
    state: LoopState, decisions: Sequence[LabelDecision | None] | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """LLM label index (n,) (NO_LABEL = abstain or no LLM) and confidence (n,) (NaN = none)."""
    labels, conf = np.full(n, NO_LABEL, dtype=np.int64), np.full(n, np.nan)
    for j, d in enumerate(decisions or []):
        if d is None or d.label is None:
            continue
        conf[j] = d.confidence
        if d.label in state.label_set:
            labels[j] = state.label_set.index(d.label)
    return labels, conf


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
    state: LoopState,
    positions: np.ndarray,
    llm_label: np.ndarray,
    llm_conf: np.ndarray,
    thresholds: Thresholds,
    round_no: int,
) -> RoutingResult:
    votes = state.votes(positions, llm_label, llm_conf, members=True)
    rng = np.random.default_rng([state.config.seed, round_no, 7])
    routing = state.config.routing
    return route(
        votes,
        thresholds,
        routing.audit_rate,
        rng,
        census_rate=routing.census_rate,
        max_audits=routing.max_audits_per_round,
    )


def _mark_llm_audits(
    state: LoopState, result: RoutingResult, round_no: int, answered: np.ndarray
) -> None:
    """Send a uniform random share of the LLM-labelled items to people as 'llm_audit': until
    the audits the trust wants are in (answered or waiting: `trust_audits`, more while the
    call is unsettled) as many as are missing, then a small rate.
    Items whose call failed (`answered` False) have no LLM label to audit."""
    routing = state.config.routing
    missing = llm_audits_missing(state)
    rng = np.random.default_rng([state.config.seed, round_no, 29])
    n = result.route.size
    if missing > 0:
        chosen = rng.choice(n, size=min(missing, n), replace=False)
    else:
        chosen = np.flatnonzero(rng.random(n) < routing.llm_audit_rate)
    chosen = chosen[answered[chosen]]
    result.route[chosen] = Route.AUDIT
    result.reason[chosen] = REASONS.index(LLM_AUDIT)


def llm_audits_missing(state: LoopState) -> int:
    """Random LLM audits the trust still wants beyond those answered or waiting for people."""
    waiting = sum(e.reason == LLM_AUDIT for e in state.store.pending())
    trust = state.trust()
    return trust.audits_wanted(state.config.routing.trust_audits) - trust.checked - waiting


def _record_model_votes(
    state: LoopState,
    items: list[Item],
    positions: np.ndarray,
    result: RoutingResult,
    round_no: int,
) -> None:
    """The classifier's vote on each routed item, with the routing facts the estimate needs."""
    probs = state.scores.probs[positions]
    names, reasons = state.label_set.names, result.reason_names()
    state.store.add_annotations(
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
    state: LoopState,
    items: list[Item],
    positions: np.ndarray,
    result: RoutingResult,
    decisions: list[LabelDecision] | None,
    llm_label: np.ndarray,
    round_no: int,
    labeller: Labeller | None,
) -> None:
    """Auto-accepted items get their label; the rest join the review queue by value."""
    accept = np.flatnonzero(result.route == Route.AUTO_ACCEPT)
    source = Source.LLM if labeller is not None else Source.MODEL
    state.store.add_annotations(
        [
            Annotation(
                items[j].key,
                state.label_set.names[int(result.label[j])],
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
    best, p_wrong = state.posterior(positions, llm_label) or (
        result.label, result.p_wrong
    )
    priority = _priority(state, positions[review], p_wrong[review])
    priority[result.route[review] == Route.AUDIT] += AUDIT_BONUS
    views = [llm_view(decisions[j] if decisions else None) for j in review]
    entries = queue_entries(
        state,
        positions[review],
        [str(r) for r in result.reason_names()[review]],
        priority,
        best[review],
        p_wrong[review],
        round_no,
        views,
        [_reviews_needed(state, items[j]) for j in review],
    )
    state.store.enqueue(entries)  # the pool's labels are reloaded once, when the round closes


def _priority(state: LoopState, positions: np.ndarray, p_wrong: np.ndarray) -> np.ndarray:
    return review_priority(
        p_wrong, state.similar_unlabelled(positions), density_power=DENSITY_POWER
    )


def _reviews_needed(state: LoopState, item: Item) -> int:
    """Overlap items (a seeded share) are shown to two operators, for agreement statistics."""
    rate = state.config.overlap_rate
    if rate <= 0:
        return 1
    draw = np.random.default_rng([state.config.seed, item.key, 11]).random()
    return 2 if draw < rate else 1


def refresh_queue(state: LoopState, keys: Sequence[int] | None = None) -> int:
    """Re-score pending review items (of `keys`, else all) with the current classifier and
    the latest LLM votes: new suggestions, priorities."""
    pending = state.store.pending()
    if keys is not None:
        wanted = set(keys)
        pending = [e for e in pending if e.item_key in wanted]
    if not pending:
        return 0
    keys = [e.item_key for e in pending]
    positions = state.pool.positions(keys)
    latest = state.store.latest_votes(Source.LLM.value, keys)
    decisions = [vote_decision(latest[k]) if k in latest else None for k in keys]
    llm_label, llm_conf = _vote_arrays(state, decisions, len(keys))
    best, p_wrong = state.posterior(positions, llm_label) or best_label(
        state.votes(positions, llm_label, llm_conf)
    )
    priority = _priority(state, positions, p_wrong)
    priority[np.array([e.reason in AUDIT_REASONS for e in pending])] += AUDIT_BONUS
    entries = queue_entries(
        state,
        positions,
        [e.reason for e in pending],
        priority,
        best,
        p_wrong,
        [e.round for e in pending],
        [llm_view(d) for d in decisions],
        [e.reviews_needed for e in pending],
    )
    # Short transactions: an operator's decision never waits behind the whole queue's rewrite.
    return sum(
        state.store.enqueue(entries[i : i + REFRESH_CHUNK])
        for i in range(0, len(entries), REFRESH_CHUNK)
    )
