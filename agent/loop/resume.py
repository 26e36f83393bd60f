"""Resume means resume: a rerun after a kill finishes the interrupted run's plan.

A job writes its plan (its limits: rounds, batch size, budgets, target) to the store's meta
when it starts, with the last round id before its first, and marks the plan finished at the
end. A rerun with the same plan whose predecessor never finished counts the rounds that one
finished and does only the rest; a changed plan, a finished one or `fresh` starts anew.
Budgets are project totals already, so they carry over by themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agent.store.protocol import ProjectStore

PLAN_KEY = "run_plan"
INTERRUPTED_NOTE = "closed by the next run: the run that opened it was killed before it ended"


@dataclass(frozen=True)
class RunPlan:
    """This job's plan: its limits, the last round before its first, rounds done before."""

    limits: dict[str, Any]
    after_round: int
    resumed_rounds: int


def begin_run(store: ProjectStore, limits: dict[str, Any], fresh: bool = False) -> RunPlan:
    """Record the plan as started: the unfinished plan it continues (same limits, not
    `fresh`), else a new one starting after the newest round."""
    earlier = store.get_meta(PLAN_KEY)
    rounds = store.rounds()
    if (
        not fresh
        and isinstance(earlier, dict)
        and not earlier.get("finished", True)
        and earlier.get("limits") == limits
    ):
        after = int(earlier["after_round"])
        plan = RunPlan(limits, after, rounds_done(rounds, after))
    else:
        plan = RunPlan(limits, max((int(r["id"]) for r in rounds), default=0), 0)
    store.set_meta(
        PLAN_KEY,
        {
            "limits": limits,
            "after_round": plan.after_round,
            "finished": False,
            "started_at": time.time(),
            "resumed_rounds": plan.resumed_rounds,
        },
    )
    return plan


def finish_run(store: ProjectStore) -> None:
    """Mark the current plan finished: the next run starts a plan of its own."""
    plan = store.get_meta(PLAN_KEY)
    if isinstance(plan, dict):
        store.set_meta(PLAN_KEY, plan | {"finished": True, "finished_at": time.time()})


def rounds_done(rounds: list[dict[str, Any]], after_round: int) -> int:
    """Rounds after `after_round` that ran to their end (not interrupted, not a final pass)."""
    return sum(
        1
        for r in rounds
        if int(r["id"]) > after_round
        and r["finished_at"] is not None
        and not r["stats"].get("interrupted")
        and "final_pass" not in r["stats"]
    )
