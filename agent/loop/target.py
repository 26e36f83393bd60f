"""Stopping on the job's own word: people stop being asked once a measurement says the target
is reached, not a hope.

After each round the job predicts the corpus accuracy from its own probabilities
(`LoopState.predicted_accuracy`). Once the prediction clears the target by `TRIGGER_MARGIN`,
a uniform random audit of the machine-labelled items measures it (the same audit as the final
one, so its verdicts feed the same estimate), and the job stops when the lower bound of the
estimate's interval reaches the target. A miss costs no more than the audit: its answers are
labels like any other, and the next check waits until as many new labels have come in.
Without a programmatic answerer the audit waits in the review queue and the job stops so that
people can answer it.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.loop.final import final_audit
from agent.loop.state import LoopState
from agent.routing.accuracy import FINAL_AUDIT_MIN, final_audit_size, store_estimate
from agent.types import Kind, Source

TRIGGER_MARGIN = 0.01  # the prediction must clear the target by this before an audit is paid
CHECKED_AT = "target_check_at"  # store meta: human labels when the last check audited
CONFIRMED = "target confirmed"  # the stop reason's first words when the bound reached it

# answer(n): people answer up to n queued items, most valuable first; returns how many.
Answer = Callable[[int], int]


def confirmed_stop(state: LoopState, target: float) -> str:
    """The stop reason when the stored estimate's lower bound has reached `target`, else ''."""
    estimate = state.store.get_meta("estimated_accuracy")
    if estimate and estimate["low"] >= target:
        return (
            f"{CONFIRMED}: estimated accuracy {estimate['value']:.3f}, lower bound "
            f"{estimate['low']:.3f} >= {target}"
        )
    return ""


def check_target(
    state: LoopState,
    target: float,
    human_budget: int | None,
    room: int | None,
    round_no: int,
    answer: Answer | None,
) -> str:
    """Audit when the prediction clears the target; the stop reason, or '' to go on. `room`:
    human labels the budget still allows (None: no limit)."""
    if stop := confirmed_stop(state, target):
        return stop
    predicted = state.predicted_accuracy()
    if predicted < target + TRIGGER_MARGIN:
        return ""
    humans = _human_labels(state)
    machine = int((~state.pool.human_mask).sum())
    size = final_audit_size(human_budget, machine, state.config.routing)
    last = state.store.get_meta(CHECKED_AT)
    if last is not None and humans < int(last) + size:
        return ""  # a check missed lately: wait for as many new labels as it cost
    size = size if room is None else min(size, room)
    if size < min(FINAL_AUDIT_MIN, machine):
        return ""
    state.store.set_meta(CHECKED_AT, humans)
    queued = final_audit(state, round_no, size)
    if answer is None:
        return f"predicted accuracy {predicted:.3f}: {queued} audit items wait for people"
    answer(queued)
    state.reload_labels()
    store_estimate(state.store, state.config.routing, state.verdicts())
    return confirmed_stop(state, target)


def _human_labels(state: LoopState) -> int:
    return state.store.count_annotations(source=Source.HUMAN.value, kind=Kind.LABEL.value)
