"""The batch job behind `labelagent run`: rounds until a budget, the round limit or the target.

Budgets are project totals (human labels ever given, LLM calls ever paid), so a job that is
killed and rerun keeps to the same budget. Each round ends with a retrain and a fresh
accuracy estimate in the store; the job ends with the classifier's final pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.errors import BudgetExceededError
from agent.loop.final import final_audit, final_audit_size, final_pass, store_estimate
from agent.loop.rounds import RoundStats, refresh_queue, run_round
from agent.types import Annotation, Kind, Source

if TYPE_CHECKING:
    from agent.labeller.labeller import Labeller
    from agent.loop.session import LabelingSession, Oracle


@dataclass(frozen=True)
class JobLimits:
    """When to stop. None means no limit of that kind."""

    rounds: int | None = 10
    batch_size: int = 50
    human_budget: int | None = None
    llm_budget: int | None = None
    target_accuracy: float | None = None
    human_per_round: int | None = None  # answers an oracle gives per round (None: all it may)


@dataclass
class JobReport:
    """What the job did and where the project stands, for the summary and for evals."""

    stop_reason: str = ""
    rounds: list[RoundStats] = field(default_factory=list)
    human_labels: int = 0
    llm_calls: int = 0
    status: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str, dict[str, Any]], None]


def human_label_count(session: LabelingSession) -> int:
    return session.store.count_annotations(source=Source.HUMAN.value, kind=Kind.LABEL.value)


def paid_llm_calls(session: LabelingSession) -> int:
    return int(session.store.cache_totals()["calls"])


def run_job(
    session: LabelingSession,
    limits: JobLimits,
    labeller: Labeller | None = None,
    oracle: Oracle | None = None,
    on_event: Progress | None = None,
) -> JobReport:
    """Rounds of select -> pre-label -> route -> human answers -> retrain, then the final pass."""
    report, notify = JobReport(), on_event or (lambda _kind, _data: None)
    session.reload_labels()
    while not (reason := _stop_reason(session, limits, report, labeller, oracle)):
        round_no = session.store.start_round()
        try:
            stats = run_round(session, round_no, labeller, _round_size(session, limits))
        except BudgetExceededError as exc:
            report.stop_reason = f"LLM budget reached ({exc})"
            break
        if oracle is not None:
            answer_queue(session, oracle, _round_room(session, limits), round_no)
        _learn(session, round_no, stats)
        report.rounds.append(stats)
        notify("round", stats.to_json())
    report.stop_reason = report.stop_reason or reason or "nothing left to select"
    _finish(session, limits, oracle, notify)
    report.human_labels = human_label_count(session)
    report.llm_calls = paid_llm_calls(session)
    return report


def _stop_reason(
    session: LabelingSession,
    limits: JobLimits,
    report: JobReport,
    labeller: Labeller | None,
    oracle: Oracle | None,
) -> str:
    if limits.rounds is not None and len(report.rounds) >= limits.rounds:
        return f"{limits.rounds} rounds done"
    llm_spent = limits.llm_budget is not None and paid_llm_calls(session) >= limits.llm_budget
    if labeller is not None and llm_spent:
        return f"LLM budget of {limits.llm_budget} calls reached"
    human_spent = _human_room(session, limits, _audit_reserve(session, limits)) == 0
    if human_spent and labeller is None:  # with an LLM, rounds still auto-accept what agrees
        return f"human budget of {limits.human_budget} labels reached"
    estimate = session.store.get_meta("estimated_accuracy")
    if (
        limits.target_accuracy is not None
        and estimate
        and estimate["value"] >= limits.target_accuracy
    ):
        return f"estimated accuracy {estimate['value']:.3f} reached the target"
    if session.candidates().size == 0 and not _answerable(session, limits, oracle):
        return "every item is labelled or waiting for review"
    return ""


def _answerable(session: LabelingSession, limits: JobLimits, oracle: Oracle | None) -> bool:
    """Whether rounds with nothing to select still help: an oracle can answer the queue,
    and each answer retrains the classifier and re-ranks what is left."""
    return (
        oracle is not None and _round_room(session, limits) != 0 and session.store.queue_size() > 0
    )


def _round_room(session: LabelingSession, limits: JobLimits) -> int | None:
    """Human answers this round may take: the rounds' share of the budget, per-round cap."""
    room = _human_room(session, limits, _audit_reserve(session, limits))
    if limits.human_per_round is None:
        return room
    return limits.human_per_round if room is None else min(room, limits.human_per_round)


def _round_size(session: LabelingSession, limits: JobLimits) -> int:
    if limits.llm_budget is None or session.backend is None:
        return limits.batch_size
    return max(1, min(limits.batch_size, limits.llm_budget - paid_llm_calls(session)))


def _audit_reserve(session: LabelingSession, limits: JobLimits) -> int:
    """Human labels kept back from the rounds for the final audit."""
    if limits.human_budget is None:
        return 0
    size = final_audit_size(limits.human_budget, len(session.pool), session.config.routing)
    return min(size, limits.human_budget // 2)


def _human_room(session: LabelingSession, limits: JobLimits, reserve: int = 0) -> int | None:
    if limits.human_budget is None:
        return None
    return max(0, limits.human_budget - reserve - human_label_count(session))


def answer_queue(
    session: LabelingSession,
    oracle: Oracle,
    limit: int | None,
    round_no: int,
    actor: str = "oracle",
) -> int:
    """Let a programmatic human answer the queue, most valuable first, up to `limit` items."""
    answered = 0
    while limit is None or answered < limit:
        entries = session.store.lease(actor, n=min(64, (limit or 64) - answered), lease_seconds=60)
        if not entries:
            break
        items = session.store.items([e.item_key for e in entries])
        for entry, item in zip(entries, items):
            label = oracle(item, entry)
            session.store.add_annotations(
                [
                    Annotation(
                        item.key,
                        label,
                        Source.HUMAN,
                        Kind.LABEL,
                        actor=actor,
                        round=round_no,
                        meta={"reason": entry.reason, "suggested": entry.suggestion.get("best")},
                    )
                ]
            )
            session.store.complete(item.key, actor)
        answered += len(entries)
    session.reload_labels()
    return answered


def _learn(session: LabelingSession, round_no: int, stats: RoundStats) -> None:
    """Retrain on the new human labels and store a fresh estimate; close the round."""
    session.reload_labels()
    session.retrain()
    if stats.selected == 0:  # a round of answers only: re-rank the queue with the new model
        refresh_queue(session)
    store_estimate(session.store, session.config.routing)
    session.store.finish_round(round_no, stats.to_json())


def _finish(
    session: LabelingSession, limits: JobLimits, oracle: Oracle | None, notify: Progress
) -> None:
    """The classifier labels what it is sure of; a uniform audit then measures the corpus."""
    round_no = session.store.start_round()
    summary = final_pass(session, round_no)
    machine = int((~session.pool.human_mask).sum())
    size = final_audit_size(limits.human_budget, machine, session.config.routing)
    room = _human_room(session, limits)
    summary["audit"] = final_audit(session, round_no, size if room is None else min(size, room))
    if oracle is not None:
        answer_queue(session, oracle, _human_room(session, limits), round_no)
        session.reload_labels()
    estimate = store_estimate(session.store, session.config.routing)
    session.store.finish_round(round_no, {"final_pass": summary})
    notify("final", summary | {"estimate": estimate})
