"""The batch job behind `labelagent run`: rounds until a budget, the round limit or the target.

Budgets are project totals (human labels ever given, LLM calls ever paid), so a job that is
killed and rerun keeps to the same budget; its rounds carry on where it stopped
(`agent.loop.resume`). A job with a holder name holds the project's run lock throughout
(`agent.loop.runlock`). Each round ends with a retrain and a fresh accuracy estimate in the
store; the job ends with the classifier's final pass.

`run_job` is synchronous (a CLI, a script); `await arun_job(...)` runs the same job from async
code (a notebook, an async service) without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from agent.errors import BudgetExceededError
from agent.loop.final import final_audit, final_pass
from agent.loop.llm_setup import build_labeller, ensure_backend
from agent.loop.record import HumanLabel, human_label_count, record_human_labels
from agent.loop.resume import INTERRUPTED_NOTE, begin_run, finish_run
from agent.loop.rounds import (
    RoundStats,
    llm_audits_missing,
    refresh_queue,
    retryable_failures,
    run_round,
)
from agent.loop.runlock import RunLock
from agent.loop.spend import paid_calls, usd_per_call
from agent.loop.state import LoopState
from agent.loop.target import CONFIRMED, check_target, confirmed_stop
from agent.routing.accuracy import final_audit_size, store_estimate
from agent.types import Item, QueueEntry

if TYPE_CHECKING:
    from agent.labeller.labeller import Labeller
    from agent.routing.trust import LLMTrust

# An oracle answers a review item with a label name, or None for "ambiguous / none fits".
Oracle = Callable[[Item, QueueEntry], "str | None"]


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
    resumed_rounds: int = 0  # rounds of the same plan an interrupted run finished earlier
    human_labels: int = 0
    llm_calls: int = 0
    status: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str, dict[str, Any]], None]


def _warn_unmeasured(state: LoopState) -> None:
    """A labeller without a backend on the state: its answers are asked and stored, but the
    routing treats the state as having no LLM (zero-shot votes), so say so."""
    warnings.warn(
        "run_job got a labeller but the state has no LLM backend, so routing and trust use "
        "the zero-shot member instead of the LLM's answers; set state.backend = "
        "labeller.backend (or pass no labeller and let the job build the configured LLM).",
        UserWarning,
        stacklevel=4,
    )


def run_job(
    state: LoopState,
    limits: JobLimits,
    labeller: Labeller | None = None,
    oracle: Oracle | None = None,
    on_event: Progress | None = None,
    *,
    holder: str | None = None,
    force: bool = False,
    fresh: bool = False,
) -> JobReport:
    """Rounds of select -> pre-label -> route -> human answers -> retrain, then the final pass.

    Without a `labeller` the job asks the state's LLM: its backend, else the model of its
    config (`llm.model`), built here; with neither, the zero-shot member stands in for it.
    With a `holder` name the job holds the project's run lock from start to end (a live
    holder's lock is refused with a StoreError; `force` takes it over), closes rounds a killed
    run left open and claims items for the LLM under that name. A rerun of an unfinished plan
    (the same limits) does only its remaining rounds, unless `fresh`.

    Called inside a running event loop (a notebook cell, async code), the job runs in a worker
    thread, because the LLM calls run an event loop of their own; the caller still waits for
    it (`await arun_job(...)` does not block the loop).
    """
    job = partial(
        _run_job, state, limits, labeller, oracle, on_event, holder=holder, force=force,
        fresh=fresh,
    )
    if not _loop_running():
        return job()
    with ThreadPoolExecutor(1, thread_name_prefix="labelagent-job") as worker:
        return worker.submit(job).result()


async def arun_job(
    state: LoopState,
    limits: JobLimits,
    labeller: Labeller | None = None,
    oracle: Oracle | None = None,
    on_event: Progress | None = None,
    *,
    holder: str | None = None,
    force: bool = False,
    fresh: bool = False,
) -> JobReport:
    """`run_job` for async code: the job runs in a worker thread (its LLM calls on that
    thread's own event loop) while the caller's loop stays free. `oracle` and `on_event` are
    called from that thread. Cancelling the await does not stop the thread: the job finishes
    (or stops at its limits) on its own."""
    return await asyncio.to_thread(
        _run_job, state, limits, labeller, oracle, on_event,
        holder=holder, force=force, fresh=fresh,
    )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_job(
    state: LoopState,
    limits: JobLimits,
    labeller: Labeller | None,
    oracle: Oracle | None,
    on_event: Progress | None,
    *,
    holder: str | None,
    force: bool,
    fresh: bool,
) -> JobReport:
    """The job on the calling thread (see `run_job`)."""
    if labeller is None:  # the state's own LLM, built from its config if need be
        ensure_backend(state)
        labeller = build_labeller(state)
    elif state.backend is None:
        _warn_unmeasured(state)
    notify = on_event or (lambda _kind, _data: None)
    if holder is not None:
        state.holder = holder
    with RunLock(state.store, holder, force=force) as lock:
        if holder is not None:
            state.store.close_interrupted_rounds(INTERRUPTED_NOTE)
        plan = begin_run(state.store, asdict(limits), fresh)
        report = JobReport(resumed_rounds=plan.resumed_rounds)
        if plan.resumed_rounds:
            notify("resume", {"rounds_done": plan.resumed_rounds, "rounds": limits.rounds})
        _rounds(state, limits, labeller, oracle, notify, report, lock)
        lock.check()
        _finish(state, limits, oracle, notify, audited=report.stop_reason.startswith(CONFIRMED))
        finish_run(state.store)
    report.human_labels = human_label_count(state.store)
    report.llm_calls = paid_calls(state.store)
    return report


def _rounds(
    state: LoopState,
    limits: JobLimits,
    labeller: Labeller | None,
    oracle: Oracle | None,
    notify: Progress,
    report: JobReport,
    lock: RunLock,
) -> None:
    """The rounds, until a stop reason (kept in `report`) or a lock taken over (StoreError)."""
    state.reload_labels()
    while not (reason := _stop_reason(state, limits, report, labeller, oracle)):
        lock.check()
        round_no = state.store.start_round()
        try:
            asking = _llm_for_round(state, labeller)
            size = _round_size(state, limits, asking)
            stats = run_round(state, round_no, asking, size, _round_strategy(state, asking))
            stats.llm_note = _record_llm_trust(state, labeller, asking)
        except BudgetExceededError as exc:
            report.stop_reason = f"LLM budget reached ({exc})"
            break
        if oracle is not None:
            answer_queue(state, oracle, _round_room(state, limits), round_no)
        _learn(state, round_no, stats)
        report.rounds.append(stats)
        notify("round", stats.to_json())
        if limits.target_accuracy is not None and (
            own_word := _own_word(state, limits, oracle, round_no)
        ):
            report.stop_reason = own_word
            break
    report.stop_reason = report.stop_reason or reason or "nothing left to select"


def _own_word(state: LoopState, limits: JobLimits, oracle: Oracle | None, round_no: int) -> str:
    """Whether a measurement now says the target is reached (see `agent.loop.target`)."""
    assert limits.target_accuracy is not None
    answer = None
    if oracle is not None:
        def answer(n: int) -> int:
            return answer_queue(state, oracle, n, round_no)
    room = _human_room(state, limits)
    return check_target(
        state, limits.target_accuracy, limits.human_budget, room, round_no, answer
    )


def _stop_reason(
    state: LoopState,
    limits: JobLimits,
    report: JobReport,
    labeller: Labeller | None,
    oracle: Oracle | None,
) -> str:
    if limits.rounds is not None and report.resumed_rounds + len(report.rounds) >= limits.rounds:
        return f"{limits.rounds} rounds done"
    llm_spent = limits.llm_budget is not None and paid_calls(state.store) >= limits.llm_budget
    if labeller is not None and llm_spent:
        return f"LLM budget of {limits.llm_budget} calls reached"
    human_spent = _human_room(state, limits, _audit_reserve(state, limits)) == 0
    if human_spent and labeller is None:  # with an LLM, rounds still auto-accept what agrees
        return f"human budget of {limits.human_budget} labels reached"
    target = limits.target_accuracy
    if target is not None and (stop := confirmed_stop(state, target)):
        return stop
    if (
        state.candidates().size == 0
        and not _answerable(state, limits, oracle)
        and not (labeller is not None and retryable_failures(state))  # a round retries them
    ):
        return "every item is labelled or waiting for review"
    return ""


def _answerable(state: LoopState, limits: JobLimits, oracle: Oracle | None) -> bool:
    """Whether rounds with nothing to select still help: an oracle can answer the queue,
    and each answer retrains the classifier and re-ranks what is left."""
    return (
        oracle is not None and _round_room(state, limits) != 0 and state.store.queue_size() > 0
    )


def _round_room(state: LoopState, limits: JobLimits) -> int | None:
    """Human answers this round may take: the rounds' share of the budget, per-round cap."""
    room = _human_room(state, limits, _audit_reserve(state, limits))
    if limits.human_per_round is None:
        return room
    return limits.human_per_round if room is None else min(room, limits.human_per_round)


def _llm_for_round(state: LoopState, labeller: Labeller | None) -> Labeller | None:
    """The labeller, unless audits show the LLM below the classifier, or people's labels
    show that its labels neither teach the classifier nor improve its guesses: then nobody is
    asked this round (both are re-read every round, so the LLM comes back if that changes).
    While its audits have not settled the call, it is asked (small uniform probes): a round
    without it sends its whole batch to people, and the cross-fitted check on a few dozen
    labels is noise (on babe it dropped real FLAN-UL2 labels, right on 74 %, at 44 audits)."""
    if labeller is None:
        return None
    trust, audits = state.trust(), state.config.routing.trust_audits
    if not trust.call_settled(audits):
        return labeller
    if state.llm_adds_nothing() or not _pays_for_itself(state, trust):
        return None
    return labeller if trust.worth_calling(audits) else None


def _pays_for_itself(state: LoopState, trust: LLMTrust) -> bool:
    """With a person's price configured, whether an answer's audited worth covers the mean
    price of the calls paid so far (`routing.human_label_usd`)."""
    return trust.pays_for_a_call(state.config.routing.human_label_usd, usd_per_call(state.store))


def _record_llm_trust(state: LoopState, labeller: Labeller | None, asking: Labeller | None) -> str:
    """What audits say of the LLM and what the job did about it; kept in the store for
    `status` ("LLM right on 33 % of 60 audits ...; relying on the classifier")."""
    if labeller is None:
        return ""
    trust = state.trust()
    note = trust.describe() + _crossfit_note(state) + _price_note(state, trust)
    note += "" if asking is not None else "; relying on the classifier"
    settled = asking is not None and trust.call_settled(state.config.routing.trust_audits)
    streak = _streak(state) + 1 if settled else 0  # settled rounds in a row that asked it
    state.store.set_meta(
        "llm_trust",
        trust.to_json() | {"asked": asking is not None, "streak": streak, "note": note},
    )
    return note


def _streak(state: LoopState) -> int:
    """Settled rounds in a row, up to the last, that asked the LLM (kept with its trust)."""
    info = state.store.get_meta("llm_trust")
    return int(info.get("streak", 0)) if isinstance(info, dict) else 0


def _price_note(state: LoopState, trust: LLMTrust) -> str:
    """Where prices stop the calls: what an answer is worth against what it costs."""
    price, cost = state.config.routing.human_label_usd, usd_per_call(state.store)
    if price is None or trust.pays_for_a_call(price, cost):
        return ""
    worth = trust.expected_weight() * price
    return f"; an answer is worth ${worth:.4f} of a person's label, a call costs ${cost:.4f}"


def _crossfit_note(state: LoopState) -> str:
    """What the cross-fitted check on people's labels found, where it found the LLM wanting."""
    parts = []
    if state.llm_teaches is False:
        parts.append("its labels teach the classifier less than people's alone (not used)")
    if state.llm_decides is False:
        parts.append("its answers do not improve the guesses (ignored)")
    return "".join(f"; {part}" for part in parts)


def _round_strategy(state: LoopState, labeller: Labeller | None) -> str | None:
    """While audits have not settled whether the LLM is worth calling on everything, its
    probes are a uniform draw of the pool, so that their audits measure it where it would be
    asked (on actively chosen items an LLM right on 57 % of the pool read 76 %)."""
    if labeller is None or state.trust().call_settled(state.config.routing.trust_audits):
        return None
    return "random"


def _round_size(state: LoopState, limits: JobLimits, labeller: Labeller | None) -> int:
    """Items to select: the batch, but while audits have not measured the LLM yet only a
    probe of it goes to the LLM (a quarter probe while its audits wait for people, or while
    more audits settle whether calling it pays: on emotion two more whole probes went out
    while the first one's audits waited, a quarter of the pool on a weak LLM), then for an
    LLM trailing the classifier a probe's worth doubling round by round (`_ramp`), never
    more than the LLM budget allows."""
    size = limits.batch_size
    if labeller is None:
        return size
    routing = state.config.routing
    trust = state.trust()
    quarter = max(1, routing.llm_probe // 4)
    if not trust.established(routing.trust_audits):
        # a whole probe only where audits are missing: not while its audits wait for people
        size = min(size, routing.llm_probe if llm_audits_missing(state) > 0 else quarter)
    elif not trust.call_settled(routing.trust_audits):  # a few more audits decide it
        size = min(size, quarter)
    elif trust.llm_rate < trust.clf_rate:  # asked as a second opinion: its calls grow
        size = min(size, _ramp(state))
    if limits.llm_budget is not None:
        size = max(1, min(size, limits.llm_budget - paid_calls(state.store)))
    return size


def _ramp(state: LoopState) -> int:
    """Items for a settled call on an LLM that trails the classifier as it stands now (asked
    as a second opinion, near the point where it stops paying): a probe's worth, twice as
    many after each round in a row that asked it (`streak` in the stored trust), so one
    round's verdict never commits the whole pool; the classifier pulling clearly ahead costs
    a round of calls, not all of them (on emotion a weak LLM tied with the classifier for
    one round and was asked about the 1,800 items left at once). An LLM at least as right as
    the classifier gets the whole batch: its answers lift every item's guess, and growing
    its calls cost 80-130 people's labels per LLM on babe 8-shot."""
    return int(state.config.routing.llm_probe * 2 ** min(_streak(state), 40))


def _audit_reserve(state: LoopState, limits: JobLimits) -> int:
    """Human labels kept back from the rounds for the final audit."""
    if limits.human_budget is None:
        return 0
    size = final_audit_size(limits.human_budget, len(state.pool), state.config.routing)
    return min(size, limits.human_budget // 2)


def _human_room(state: LoopState, limits: JobLimits, reserve: int = 0) -> int | None:
    if limits.human_budget is None:
        return None
    return max(0, limits.human_budget - reserve - human_label_count(state.store))


def answer_queue(
    state: LoopState,
    oracle: Oracle,
    limit: int | None,
    round_no: int,
    actor: str = "oracle",
) -> int:
    """Let a programmatic human answer the queue, most valuable first, up to `limit` items.

    The pool's labels are stale afterwards: the caller reloads them once (`_learn`)."""
    answered = 0
    while limit is None or answered < limit:
        entries = state.store.lease(actor, n=min(64, (limit or 64) - answered), lease_seconds=60)
        if not entries:
            break
        items = state.store.items([e.item_key for e in entries])
        for entry, item in zip(entries, items):
            answer = HumanLabel(
                item.key,
                oracle(item, entry),
                round_no,
                meta={"reason": entry.reason, "suggested": entry.suggestion.get("best")},
            )
            record_human_labels(state.store, [answer], actor)
        answered += len(entries)
    return answered


def _learn(state: LoopState, round_no: int, stats: RoundStats) -> None:
    """Retrain on the new human labels and store a fresh estimate; close the round."""
    state.reload_labels()
    state.retrain()
    if stats.selected == 0:  # a round of answers only: re-rank the queue with the new model
        refresh_queue(state)
    store_estimate(state.store, state.config.routing, state.verdicts())
    state.store.finish_round(round_no, stats.to_json())


def _finish(
    state: LoopState,
    limits: JobLimits,
    oracle: Oracle | None,
    notify: Progress,
    audited: bool = False,
) -> None:
    """The classifier labels what it is sure of; a uniform audit then measures the corpus
    (unless one just did: `audited`)."""
    round_no = state.store.start_round()
    summary = final_pass(state, round_no)
    machine = int((~state.pool.human_mask).sum())
    size = 0 if audited else final_audit_size(limits.human_budget, machine, state.config.routing)
    room = _human_room(state, limits)
    summary["audit"] = final_audit(state, round_no, size if room is None else min(size, room))
    if oracle is not None and not audited:  # a confirmed target asks nobody anything more
        answer_queue(state, oracle, _human_room(state, limits), round_no)
        state.reload_labels()
    estimate = store_estimate(state.store, state.config.routing, state.verdicts())
    state.store.finish_round(round_no, {"final_pass": summary})
    notify("final", summary | {"estimate": estimate})
