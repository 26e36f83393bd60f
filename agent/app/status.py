"""What `labelagent status` reports: one dict, also shown in the TUI header and run summary."""

from __future__ import annotations

from typing import Any

from agent.app.kappa import agreement_summary
from agent.config import LLMConfig, RoutingConfig
from agent.loop.resume import PLAN_KEY
from agent.loop.spend import project_spend
from agent.routing.accuracy import estimate_from_store
from agent.routing.calibration import CALIBRATION_META
from agent.routing.final_answer import final_answers, status_counts
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
    json_estimate = estimate.to_json() if estimate else None
    answers = final_answers(store)
    llm_totals = store.cache_totals()
    return {
        "items": store.count_items(),
        "long_texts": {"over_chars": cut_at, "items": store.count_long_texts(cut_at)},
        "labelled": sum(by_source.values()),
        "by_source": by_source,
        "queue": queue.get("pending", 0),
        "reviewed": queue.get("done", 0),
        "rounds": len(store.rounds()),
        "llm": llm_totals,
        "spend": project_spend(store, (routing or RoutingConfig()).human_label_usd, llm_totals),
        "llm_failed_items": store.count_failed_llm_items(),  # asked again by the next run
        "by_status": status_counts(answers),
        "none_fits": sum(a.status == "none" and a.source == "human" for a in answers.values()),
        "estimated_accuracy": json_estimate,
        "target": target_verdict(store, json_estimate),
        "folder": str(store.path.parent) if store.path is not None else None,
        "agreement": agreement_summary(store),  # Cohen's kappa over overlap items
        "llm_trust": store.get_meta("llm_trust"),  # the LLM's audited record, if it has one
        "p_right": store.get_meta(CALIBRATION_META),  # how final_confidence was measured
    }


def target_verdict(store: ProjectStore, estimate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last run's `--target-accuracy` and whether the estimate's lower bound meets it
    (None: no target was set)."""
    plan = store.get_meta(PLAN_KEY)
    target = plan.get("limits", {}).get("target_accuracy") if isinstance(plan, dict) else None
    if target is None:
        return None
    met = estimate is not None and float(estimate["low"]) >= float(target)
    return {"accuracy": float(target), "met": met}
