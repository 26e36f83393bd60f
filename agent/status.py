"""What `labelagent status` reports: one dict, also shown in the TUI header and run summary."""

from __future__ import annotations

from typing import Any

from agent.agreement import agreement_summary
from agent.store import Store


def project_status(store: Store) -> dict[str, Any]:
    """Counts, queue, LLM spend and the latest accuracy estimate (None until one exists)."""
    by_source = store.counts_by_source()
    queue = store.queue_counts()
    return {
        "items": store.count_items(),
        "labelled": sum(by_source.values()),
        "by_source": by_source,
        "queue": queue.get("pending", 0),
        "reviewed": queue.get("done", 0),
        "rounds": len(store.rounds()),
        "llm": store.cache_totals(),
        "estimated_accuracy": store.get_meta("estimated_accuracy"),
        "agreement": agreement_summary(store),  # Cohen's kappa over overlap items
    }
