"""What a multi-label run may still do: how many items the LLM may still be asked about under
the run's call budget.

The LLM budget counts paid calls in all, as single-label's `--llm-budget` does: the calls the
project's cache holds (every answer paid for, by any run) and, within this run, every call the
labeller makes (a sample, a re-ask). Once it is spent the LLM is not asked again; the rounds
go on as they would without an LLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.store.protocol import ProjectStore

if TYPE_CHECKING:
    from agent.labeller.multi import MultiLabeller


def paid_calls(store: ProjectStore) -> int:
    """Paid LLM calls the project's cache holds (one entry per paid answer or sample call)."""
    return int(store.cache_totals()["calls"])


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
    return f"LLM budget {what} reached: the LLM is not asked"
