"""What `labelagent status` reports: one dict, also shown in the TUI header and run summary."""

from __future__ import annotations

from typing import Any

from agent.app.kappa import agreement_summary
from agent.config import LLMConfig, RoutingConfig
from agent.routing.accuracy import estimate_from_store
from agent.routing.sources import counts_by_source
from agent.store.protocol import ProjectStore


def project_status(
    store: ProjectStore, routing: RoutingConfig | None = None, llm: LLMConfig | None = None
) -> dict[str, Any]:
    """Counts, queue, LLM spend and the accuracy estimate, recomputed from the evidence now."""
    estimate = estimate_from_store(store, routing or RoutingConfig())
    cut_at = (llm or LLMConfig()).max_text_chars
    by_source = counts_by_source(store)
    queue = store.queue_counts()
    return {
        "items": store.count_items(),
        "long_texts": {"over_chars": cut_at, "items": store.count_long_texts(cut_at)},
        "labelled": sum(by_source.values()),
        "by_source": by_source,
        "queue": queue.get("pending", 0),
        "reviewed": queue.get("done", 0),
        "rounds": len(store.rounds()),
        "llm": store.cache_totals(),
        "estimated_accuracy": estimate.to_json() if estimate else None,
        "agreement": agreement_summary(store),  # Cohen's kappa over overlap items
        "llm_trust": store.get_meta("llm_trust"),  # the LLM's audited record, if it has one
    }
