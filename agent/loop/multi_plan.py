"""What a multi-label run may still do: the rounds and human labels its plan has left after an
interrupted run (resume means resume, as single-label's `agent.loop.resume`), and how many
items the LLM may still be asked about under the run's call budget.

The LLM budget counts paid calls in all, as single-label's `--llm-budget` does: the calls the
project's cache holds (every answer paid for, by any run) and, within this run, every call the
labeller makes (a sample, a re-ask). Once it is spent the LLM is not asked again; the rounds
go on as they would without an LLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.loop.resume import begin_run, rounds_done
from agent.loop.spend import paid_calls
from agent.store.protocol import ProjectStore

if TYPE_CHECKING:
    from agent.labeller.multi import MultiLabeller


@dataclass(frozen=True)
class Resumed:
    """What the interrupted run of the same plan did: rounds finished, people's answers in
    them (both 0 for a new plan)."""

    rounds: int = 0
    human_labels: int = 0


def begin_multi_run(store: ProjectStore, limits: dict[str, Any], fresh: bool) -> Resumed:
    """Record the run's plan (`limits`); a rerun of an unfinished one (not `fresh`) counts
    what its rounds already did, so it does only the rest within the same budgets."""
    plan = begin_run(store, limits, fresh)
    if not plan.resumed_rounds:
        return Resumed()
    done = [r for r in store.rounds() if int(r["id"]) > plan.after_round]
    answered = sum(int(r["stats"].get("human_labels", 0)) for r in done
                   if rounds_done([r], plan.after_round))  # fmt: skip
    return Resumed(plan.resumed_rounds, answered)


def cap_llm(labeller: MultiLabeller, store: ProjectStore, llm_budget: int | None) -> None:
    """Give the labeller what is left of `llm_budget` paid calls in all (None: no cap)."""
    if llm_budget is not None:
        labeller.limit_calls(llm_budget - paid_calls(store))


def llm_room(labeller: MultiLabeller) -> int | None:
    """Items the LLM may still be asked about (each takes `calls_per_item` calls, as seen so
    far); None when its budget has no call limit."""
    budget = labeller.budget
    if budget.max_calls is None:
        return None
    left = max(budget.max_calls - budget.calls, 0)
    return int(left / labeller.calls_per_item + 1e-9)


def budget_note(llm_budget: int | None) -> str:
    """The progress line's and summary's words once the budget is spent."""
    what = f"of {llm_budget} calls" if llm_budget is not None else "(llm.budget_calls/usd)"
    return f"LLM budget {what} reached: the LLM is not asked again"
