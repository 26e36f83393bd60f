"""People in a multi-label run: the simulated operator (an oracle of sets) answering the
review queue within the human budget, and the final audit, a uniform random sample of the
machine sets that the exact-set estimate reads."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agent.loop.state import LoopState
from agent.routing.accuracy import final_audit_size
from agent.routing.multi import AUDIT_META
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.types import Annotation, Item, Kind, Source, encode_label_set

SetOracle = Callable[[Item], str | None]  # an item -> a person's encoded set (None: no answer)


def answer_queue(
    state: LoopState, oracle: SetOracle | None, limits: tuple[int | None, int | None],
    spent: int,
) -> int:  # fmt: skip
    """The simulated operator answers the pending queue, audits first, within the budget
    (`spent` of it given already) and the round's cap (`limits`; None: no limit); how many
    it answered."""
    budget, cap = limits
    if oracle is None:
        return 0
    limits_set = [n for n in (cap, None if budget is None else budget - spent)
                  if n is not None]  # fmt: skip
    room = max(0, min(limits_set)) if limits_set else None
    if room == 0:
        return 0
    pending = state.store.pending(room)
    return record_answers(state, oracle, [e.item_key for e in pending])


def record_answers(state: LoopState, oracle: SetOracle, keys: list[int]) -> int:
    """The oracle's sets for `keys`, recorded as people's labels; how many it gave."""
    answers = []
    for item in state.store.items(keys):
        given = oracle(item)
        if given is not None:
            answers.append(Annotation(item.key, given, Source.HUMAN, Kind.LABEL, actor="oracle"))
    if answers:
        state.store.record_human_labels(answers, "oracle")
    return len(answers)


def machine_population(state: LoopState) -> list[tuple[int, str, float]]:
    """(key, machine set, P(right)) of every item whose final set is not a person's: accepted
    machine sets and the suggestions of items still waiting in the queue."""
    currents = current_labels(state.store)
    views = state.store.queue_views()
    out = []
    for key in state.pool.keys.tolist():
        current = currents.get(key)
        if current is not None and current.source in HUMAN_SOURCES:
            continue
        if current is not None and current.label is not None:
            out.append((key, current.label, float(current.confidence or 0.0)))
        elif key in views and views[key].suggestion.get("labels"):
            s = views[key].suggestion
            out.append((key, encode_label_set(s["labels"], state.label_set), float(s["p_right"])))
    return out


def final_audit(
    state: LoopState, oracle: SetOracle, budgets: tuple[int | None, int | None],
    rng: np.random.Generator,
) -> int:
    """A uniform random sample of the machine sets (sized as single-label's final audit, within
    what is left of the budget), answered by people; its population and draws go to store
    meta, where `exact_set_estimate` reads them."""
    limits_budget, budget = budgets  # the run's whole human budget, and what is left of it
    population = machine_population(state)
    if not population:
        return 0
    size = final_audit_size(limits_budget, len(population), state.config.routing)
    size = size if budget is None else min(size, budget)
    drawn = rng.choice(len(population), size=size, replace=False)
    draws = [population[int(i)] for i in drawn]
    p = np.array([q for _, _, q in population])
    state.store.set_meta(AUDIT_META, {"population": len(population), "mean": float(p.mean()),
                                      "var": float(p.var()), "draws": draws})  # fmt: skip
    return record_answers(state, oracle, [k for k, _, _ in draws])
