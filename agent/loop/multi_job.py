"""The batch job of a multi-label project: rounds of select -> LLM label sets -> route per
label -> people answer -> retrain, then a final pass and a final audit for the estimate.

It works on the same store as single-label (items, append-only annotations, queue, caches):
a set is one annotation whose `label` is the set's canonical text (`encode_label_set`). A rerun
of a run that was killed finishes its plan, and the LLM stops being asked once the run's call
budget is spent (`agent.loop.multi_plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from agent.config import RoutingConfig
from agent.labeller.multi import MultiLabeller, SetDecision, decision_json
from agent.learn.multilabel import OneVsRest, fit_ovr, predicted_sets
from agent.learn.strategies import get_strategy
from agent.loop.multi_people import SetOracle, answer_queue, final_audit
from agent.loop.multi_plan import begin_multi_run, budget_note, cap_llm, llm_room
from agent.loop.resume import finish_run
from agent.loop.state import LoopState
from agent.routing.multi import (
    AUDIT,
    CANDIDATES_META,
    SetEvidence,
    SetRoute,
    fit_set_thresholds,
    route_set,
    set_confidences,
    set_p_right,
)
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.routing.thresholds import Thresholds
from agent.types import (
    Annotation,
    Item,
    Kind,
    QueueEntry,
    Source,
    decode_label_set,
    encode_label_set,
    label_set_vector,
)

STRATEGY = "label_mean_uncertainty"
COLD_START = 20  # people's sets before the classifier's uncertainty chooses (random before)
EVIDENCE_WANTED = 150  # answered audits before the audit rate falls from census to steady
MIN_AUDIT_RATE = 0.01  # audits never stop, whatever the config says
THRESHOLDS_META = "multi_thresholds"  # store meta: the thresholds of the latest round


@dataclass(frozen=True)
class MultiLimits:
    rounds: int = 5
    batch_size: int = 50
    human_budget: int | None = None
    # Exact-set accuracy the LLM-answered items must reach once routed (people's sets right,
    # accepted ones as audited); None: accepted sets must reach routing.target_precision.
    target_accuracy: float | None = None
    # Items the LLM is asked on per round once thresholds are certified, ahead of people, who
    # then answer at most `batch_size` a round, the most doubtful first; None: `batch_size`,
    # and people answer every queued item each round.
    llm_batch: int | None = None
    llm_budget: int | None = None  # paid LLM calls in all (the project's), None: no limit


@dataclass
class MultiReport:
    rounds: int = 0
    selected: int = 0
    auto_accepted: int = 0
    queued: int = 0
    human_labels: int = 0
    llm_calls: int = 0
    final_labelled: int = 0
    final_audit: int = 0
    stop_reason: str = "rounds done"
    per_round: list[dict[str, Any]] = field(default_factory=list)
    resumed_rounds: int = 0  # rounds of the same plan an interrupted run finished earlier
    llm_budget_reached: bool = False


def fit_classifier(state: LoopState, currents: Mapping[int, Any] | None = None) -> OneVsRest:
    """One-vs-rest on people's sets (weight routing.human_weight) and accepted machine sets;
    `currents`: the store's current labels when the caller has read them already."""
    pool, labels = state.pool, state.label_set
    rows, sets, weights = [], [], []
    if currents is None:
        currents = current_labels(state.store)
    for key, current in currents.items():
        if current.label is None:
            continue
        human = current.source in HUMAN_SOURCES
        if not human and current.source != Source.LLM.value:
            continue
        rows.append(key)
        sets.append(label_set_vector(decode_label_set(current.label) or (), labels))
        weights.append(state.config.routing.human_weight if human else 1.0)
    X = pool.vectors[pool.positions(rows)] if rows else pool.vectors[:0]
    Y = np.array(sets, dtype=np.int8).reshape(len(rows), len(labels))
    return fit_ovr(X, Y, np.asarray(weights), c=state.config.llm_taught_c, seed=state.config.seed)


def run_multi_job(
    state: LoopState,
    limits: MultiLimits,
    labeller: MultiLabeller | None,
    oracle: SetOracle | None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    *,
    fresh: bool = False,
) -> MultiReport:
    """The rounds, then the final pass and audit; every decision lands in the store at once.
    A rerun of an unfinished plan (the same limits) does only its remaining rounds within
    the same human budget, unless `fresh`; `report.human_labels` counts the plan's."""
    notify = on_event or (lambda _kind, _data: None)
    resumed = begin_multi_run(state.store, asdict(limits), fresh)
    report = MultiReport(resumed_rounds=resumed.rounds, human_labels=resumed.human_labels)
    if resumed.rounds:
        notify("resume", {"rounds_done": resumed.rounds, "rounds": limits.rounds})
    if labeller is not None:
        cap_llm(labeller, state.store, limits.llm_budget)
    budget = limits.human_budget
    final_share = state.config.routing.final_audit_share if budget is not None else 0.0
    round_budget = None if budget is None else int(budget * (1.0 - final_share))
    rng = np.random.default_rng(state.config.seed)
    for _ in range(limits.rounds - resumed.rounds):
        if round_budget is not None and report.human_labels >= round_budget:
            report.stop_reason = "human budget spent"
            break
        done = _one_round(state, limits, labeller, oracle, (rng, report, round_budget))
        notify("round", done)
        if done["selected"] == 0 and done["human_labels"] == 0:
            report.stop_reason = "pool exhausted"
            break
    report.final_labelled = final_pass(state)
    if oracle is not None:
        left = None if budget is None else max(budget - report.human_labels, 0)
        report.final_audit = final_audit(state, oracle, (budget, left), rng)
        report.human_labels += report.final_audit
    notify("final", {"labelled": report.final_labelled, "audited": report.final_audit})
    finish_run(state.store)
    return report


def _one_round(
    state: LoopState, limits: MultiLimits, labeller: MultiLabeller | None,
    oracle: SetOracle | None, ctx: tuple[np.random.Generator, MultiReport, int | None],
) -> dict[str, Any]:  # fmt: skip
    rng, report, round_budget = ctx
    round_id = state.store.start_round()
    currents = current_labels(state.store)  # read once: fit and selection share it
    model = fit_classifier(state, currents)
    probs = model.predict_proba(state.pool.vectors)
    asking, size = _asking(labeller, report, _llm_batch(state, limits), limits.batch_size)
    picked = _select(state, currents, probs, size, rng)
    items = state.items_at(picked)
    decisions: list[SetDecision | None] = [None] * len(items)
    calls = 0  # this round's, as a single-label round's stats count them (the report sums them)
    if asking is not None and items:
        before = asking.calls
        decisions = asking.label(items)
        calls = asking.calls - before
        report.llm_calls += calls
        report.llm_budget_reached |= asking.budget_reached or llm_room(asking) == 0
    auto, queued = _route(state, items, (decisions, probs[picked]), round_id,
                          (rng, currents, limits.target_accuracy))  # fmt: skip
    cap = limits.batch_size if limits.llm_batch is not None else None
    answered = answer_queue(state, oracle, (round_budget, cap), report.human_labels)
    report.human_labels += answered
    stats: dict[str, Any] = {"round": round_id, "selected": len(items), "auto_accepted": auto,
                             "queued": queued, "human_labels": answered,
                             "llm_calls": calls}  # fmt: skip
    if labeller is not None and report.llm_budget_reached:
        stats["llm_note"] = budget_note(limits.llm_budget)
    state.store.finish_round(round_id, stats)
    report.rounds += 1
    report.selected += len(items)
    report.auto_accepted += auto
    report.queued += queued
    report.per_round.append(stats)
    return stats


def _asking(
    labeller: MultiLabeller | None, report: MultiReport, llm_size: int, batch_size: int
) -> tuple[MultiLabeller | None, int]:
    """(the labeller to ask this round, or None, and how many items to select): at most what
    its budget has calls left for; once it has none, the round goes on without the LLM."""
    room = None if labeller is None else llm_room(labeller)
    if labeller is None or report.llm_budget_reached or room == 0:
        report.llm_budget_reached |= labeller is not None
        return None, batch_size
    return labeller, llm_size if room is None else min(llm_size, room)


def _llm_batch(state: LoopState, limits: MultiLimits) -> int:
    """Items to ask the LLM on this round: `llm_batch` once the audits have certified
    thresholds (its sets can then be accepted), `batch_size` before."""
    certified = (state.store.get_meta(THRESHOLDS_META) or {}).get("llm") is not None
    return limits.llm_batch if limits.llm_batch is not None and certified else limits.batch_size


def _untouched(state: LoopState, currents: Mapping[int, Any]) -> np.ndarray:
    """Pool positions of items nobody has labelled, queued or had the machines label."""
    taken = set(currents) | set(state.store.queued_keys())
    return np.flatnonzero(~np.isin(state.pool.keys, np.fromiter(taken, np.int64, len(taken))))


def _select(
    state: LoopState, currents: Mapping[int, Any], probs: np.ndarray, n: int,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Pool positions to look at: unlabelled, never queued, never asked; by mean per-label
    uncertainty once people have given COLD_START sets, uniformly before."""
    free = _untouched(state, currents)
    n = min(n, free.size)
    if n == 0:
        return free[:0]
    people = sum(1 for c in currents.values()
                 if c.source in HUMAN_SOURCES and c.label is not None)  # fmt: skip
    name = STRATEGY if people >= COLD_START else "random"
    chosen = get_strategy(name)(probs, state.pool.vectors, free, n, rng)
    return np.asarray(chosen.indices, dtype=np.int64)


def _route(
    state: LoopState, items: list[Item], votes: tuple[list[SetDecision | None], np.ndarray],
    round_id: int, ctx: tuple[np.random.Generator, Mapping[int, Any], float | None],
) -> tuple[int, int]:  # fmt: skip
    """Write the LLM's votes, auto-accepted sets and queue entries; (auto, queued). A uniform
    random share of the items the LLM answered is audited whatever their route: the evidence
    that certifies the thresholds (`agent.routing.multi`); `ctx[2]`: the corpus target."""
    decisions, clf = votes
    rng, currents, target = ctx
    labels, routing = state.label_set, state.config.routing
    thresholds, audits = _thresholds(state, audit_rows(state), (currents, target))
    rate = audit_rate(thresholds, audits, routing)
    notes: list[Annotation] = []
    entries: list[QueueEntry] = []
    for item, decision, p_clf in zip(items, decisions, clf, strict=True):
        llm = None if decision is None or decision.labels is None else np.array(decision.scores)
        if decision is not None:
            notes.append(_vote(item, decision, labels, round_id))
        route = route_set(llm, p_clf, labels, routing.label_confidence, thresholds)
        suggestion = _suggestion(route, llm, p_clf, decision, labels)
        audited = llm is not None and rng.random() < rate  # uniform: drawn before the route
        if route.auto:  # only ever with the LLM's set
            notes.append(Annotation(item.key, encode_label_set(route.proposed, labels),
                                    Source.LLM, Kind.LABEL, actor="auto",
                                    confidence=thresholds.correct / thresholds.checked,
                                    round=round_id, meta={"route": "auto"}))  # fmt: skip
        if audited and llm is not None:  # its entry keeps the evidence: P(set right) as routed
            evidence = {"set_p": list(set_confidences(llm, p_clf)), "auto": route.auto}
            entries.append(QueueEntry(item.key, AUDIT, 2.0, round_id, {**suggestion, **evidence}))
        elif not route.auto:
            entries.append(QueueEntry(item.key, route.reason, 1.0 - suggestion["p_right"],
                                      round_id, suggestion))  # fmt: skip
    state.store.add_annotations(notes)
    state.store.enqueue(entries)
    state.store.set_meta(THRESHOLDS_META, {**thresholds.to_json(), "audit_rate": rate,
                                           "target_accuracy": target})  # fmt: skip
    auto = sum(1 for a in notes if a.kind == Kind.LABEL)
    return auto, sum(1 for e in entries if e.reason != AUDIT)


def audit_rows(state: LoopState) -> list[list[Any]]:
    """[key, p_llm, p_clf, auto, LLM set, True] of every audit drawn so far, read from the
    audit queue entries (one row per audit, written once, not a growing meta value); a
    project routed before they kept it has its rows in CANDIDATES_META, read too."""
    rows = [[key, *v.suggestion["set_p"], v.suggestion["auto"],
             encode_label_set(v.suggestion["labels"], state.label_set), True]
            for key, v in state.store.queue_views().items()
            if v.reason == AUDIT and "set_p" in v.suggestion]  # fmt: skip
    seen = {r[0] for r in rows}
    legacy = [r for r in state.store.get_meta(CANDIDATES_META, []) if r[5] and r[0] not in seen]
    return rows + legacy


def _thresholds(
    state: LoopState, rows: list[list[Any]], ctx: tuple[Mapping[int, Any], float | None]
) -> tuple[Thresholds, int]:
    """The thresholds the answered audits certify now, and how many audits there are."""
    currents, target = ctx
    truth = {k: c.label for k, c in currents.items()
             if c.source in HUMAN_SOURCES and c.label is not None}  # fmt: skip
    evidence = SetEvidence.from_rows(rows, truth)
    fitted = fit_set_thresholds(evidence, state.config.routing, target)
    return fitted, len(evidence.right)


def audit_rate(thresholds: Thresholds, audits: int, routing: RoutingConfig) -> float:
    """Share of LLM-answered items audited: all while nothing is certified (they go to people
    anyway, so this census costs nothing), the census rate until EVIDENCE_WANTED audits are in
    (thresholds loosen with evidence), then the steady audit rate; never zero, so accepted
    sets keep being measured."""
    if not thresholds.accepts_any:
        return 1.0
    if audits < EVIDENCE_WANTED:
        return float(routing.census_rate)
    return max(float(routing.audit_rate), MIN_AUDIT_RATE)


def _suggestion(
    route: SetRoute, llm: np.ndarray | None, p_clf: np.ndarray, decision: SetDecision | None,
    labels: Any,
) -> dict[str, Any]:  # fmt: skip
    """What the reviewer sees: the proposed set, the labels in doubt and why, both members'
    scores."""
    return {"labels": list(route.proposed), "doubt": route.doubt,
           "p_right": set_p_right(llm, p_clf, route.proposed, labels),
           "source": "llm" if llm is not None else "classifier",
           "classifier": {n: round(float(p), 3) for n, p in zip(labels.names, p_clf)},
           "llm": decision_json(decision, labels) if decision else None}  # fmt: skip


def _vote(item: Item, decision: SetDecision, labels: Any, round_id: int) -> Annotation:
    encoded = None if decision.labels is None else encode_label_set(decision.labels, labels)
    return Annotation(item.key, encoded, Source.LLM, Kind.VOTE, actor=decision.model,
                      confidence=None, rationale=decision.rationale,
                      prompt_hash=decision.prompt_hash, round=round_id,
                      meta={"scores": list(decision.scores), "cached": decision.cached,
                            "confidence_method": decision.method,
                            **decision.note})  # fmt: skip


def final_pass(state: LoopState) -> int:
    """The classifier labels every item nobody has labelled or queued (its predicted set)."""
    currents = current_labels(state.store)
    pool, labels = state.pool, state.label_set
    rest = _untouched(state, currents)
    if rest.size == 0:
        return 0
    probs = fit_classifier(state, currents).predict_proba(pool.vectors[rest])
    sets = predicted_sets(probs)
    notes = []
    for key, row, p in zip(pool.keys[rest], sets, probs, strict=True):
        names = tuple(n for n, on in zip(labels.names, row) if on)
        p_right = set_p_right(None, p, names, labels)
        notes.append(Annotation(int(key), encode_label_set(names, labels), Source.MODEL,
                                Kind.LABEL, actor="classifier", confidence=p_right))  # fmt: skip
    state.store.add_annotations(notes)
    return len(notes)
