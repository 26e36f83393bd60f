"""Stopping on the job's own word: people stop being asked once a measurement says the target
is reached, not a hope.

After each round the job predicts each label's chance of being right from its own
probabilities (`LoopState.p_right`). Once the prediction clears the target by enough that an
audit no larger than the final one would show it (`audit_needed`), it draws that audit of the
machine-labelled items (the same kind as the final one, so its verdicts feed the same
estimate), and the job stops when the lower bound of the estimate's interval reaches the
target. A miss costs no more than the audit: its answers are labels like any other, and the
next check waits until as many new labels have come in. Each look is charged a share of the
error rate (`agent.routing.accuracy`), so stopping at a lucky draw cannot make the interval
claim more than it should.
Without a programmatic answerer the audit waits in the review queue and the job stops so that
people can answer it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import norm

from agent.loop.final import final_audit
from agent.loop.record import human_label_count
from agent.loop.state import LoopState
from agent.routing.accuracy import (
    FINAL_AUDIT_MIN,
    LOOKS,
    charged_level,
    final_audit_size,
    store_estimate,
)

TRIGGER_MARGIN = 0.01  # the prediction must clear the target by this before an audit is paid
# An audit within the reserve is paid once the prediction says one up to this many times larger
# would show the target: early predictions undersell a good LLM (on sms_spam they read 0.94
# while the labels were right on 0.965, asking for audits of 100-250 where 40 would do).
STRETCH = 4
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
    """Audit when the prediction clears the target by enough for an affordable audit to show
    it; the stop reason, or '' to go on. `room`: human labels the budget still allows."""
    if stop := confirmed_stop(state, target):
        return stop
    p_right = state.p_right()
    machine = ~state.pool.human_mask
    cap = final_audit_size(human_budget, int(machine.sum()), state.config.routing)
    looks = int(state.store.get_meta(LOOKS) or 0)
    level = charged_level(looks + 1, state.config.routing.confidence_level)
    earlier = int(np.sum(state.verdicts().stage == "final_audit"))  # pooled with the next
    size = audit_needed(p_right, machine, target, level, earlier)
    if size is None or size > STRETCH * cap:
        return ""  # the prediction does not clear the target by enough for an audit to show
    size = min(size, cap)
    humans = human_label_count(state.store)
    last = state.store.get_meta(CHECKED_AT)
    if last is not None and humans < int(last) + cap:
        return ""  # a check missed lately: wait for as many new labels as an audit may cost
    size = max(size, min(FINAL_AUDIT_MIN, int(machine.sum())))
    if room is not None and size > room:
        return ""
    state.store.set_meta(CHECKED_AT, humans)
    state.store.set_meta(LOOKS, looks + 1)
    queued = final_audit(state, round_no, size)
    if answer is None:
        return f"predicted accuracy {p_right.mean():.3f}: {queued} audit items wait for people"
    answer(queued)
    state.reload_labels()
    store_estimate(state.store, state.config.routing, state.verdicts())
    return confirmed_stop(state, target)


def audit_needed(
    p_right: np.ndarray, machine: np.ndarray, target: float, level: float, earlier: int = 0
) -> int | None:
    """Audit draws that would put the lower bound at the target if the predictions (n,) are
    right: the machine labels' predicted accuracy must clear what the target asks of them by
    z * sd / sqrt(n) (sd of a right/wrong outcome at that accuracy, a one-sided bound at the
    level that looks are charged, see `agent.routing.accuracy`), less the `earlier` audits'
    answers, which the estimate pools with the new ones. None when it does not clear it by
    TRIGGER_MARGIN at all."""
    m, total = int(machine.sum()), p_right.size
    if m == 0:
        return None
    needed = (target * total - (total - m)) / m  # machine accuracy the target asks for
    predicted = float(p_right[machine].mean())
    gap = predicted - needed
    if gap < TRIGGER_MARGIN * total / m:
        return None
    z = float(norm.ppf(1 - (1 - level) / 2))
    sd = np.sqrt(max(predicted * (1 - predicted), 1e-4))
    return max(0, int(np.ceil((z * sd / gap) ** 2)) - earlier)
