"""What a project has spent: people's labels and paid LLM calls, in counts and in dollars.

The LLM's dollars are what the provider's price list says of each paid call (kept with the
call in the reply cache); people's are their label count at `routing.human_label_usd`, the
price the user gives (None: counted, not priced).
"""

from __future__ import annotations

from typing import Any

from agent.loop.record import human_label_count
from agent.store.protocol import ProjectStore


def paid_calls(store: ProjectStore) -> int:
    """Paid LLM calls the project's cache holds (one entry per paid answer or sample call): what
    every `--llm-budget` counts, budgets being the project's totals."""
    return int(store.cache_totals()["calls"])


def usd_per_call(store: ProjectStore) -> float:
    """The mean price of the LLM calls paid so far (0.0 before any, or where calls are free)."""
    totals = store.cache_totals()
    calls = int(totals["calls"])
    return float(totals["cost_usd"]) / calls if calls else 0.0


def project_spend(
    store: ProjectStore, human_label_usd: float | None, totals: dict[str, float]
) -> dict[str, Any]:
    """People's labels and the LLM's calls (`totals`: the store's `cache_totals`, read once by
    the caller), each with its dollars (people's None unpriced)."""
    people = human_label_count(store)
    return {
        "human_labels": people,
        "human_usd": None if human_label_usd is None else round(people * human_label_usd, 4),
        "llm_calls": int(totals["calls"]),
        "llm_usd": round(float(totals["cost_usd"]), 4),
    }
