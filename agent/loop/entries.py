"""Queue entries: what a reviewer is shown for an item, built in one place for every caller.

Rounds, the queue refresh, the final pass and the final audit all queue items through
`queue_entries`, so the suggestion a reviewer sees always has the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.loop.state import LoopState
from agent.types import NO_LABEL, LabelDecision, QueueEntry, Source

LLMView = dict[str, Any]


def llm_view(decision: LabelDecision | None) -> LLMView | None:
    """The LLM's answer as a reviewer sees it (None: the LLM was not asked)."""
    if decision is None:
        return None
    return {
        "label": decision.label,
        "confidence": round(decision.confidence, 4),
        "rationale": decision.rationale,
        "method": decision.confidence_method,
    }


def vote_decision(row: dict[str, Any]) -> LabelDecision:
    """A stored LLM vote as the decision it recorded (cached: replaying it costs nothing)."""
    meta = json.loads(row["meta"] or "{}")
    return LabelDecision(
        row["label"],
        float(row["confidence"] or 0.0),
        row["rationale"],
        meta.get("confidence_method", "stated"),
        cached=True,
        prompt_hash=row["prompt_hash"],
        model=row["actor"],
    )


def stored_llm_views(state: LoopState, positions: np.ndarray) -> list[LLMView | None]:
    """The LLM's latest stored answer on each item at `positions`, as a reviewer sees it: an
    item queued again (a final audit, a classifier doubt) keeps the answer it was asked for."""
    keys = [int(k) for k in state.pool.keys[positions]]
    latest = state.store.latest_votes(Source.LLM.value, keys)
    return [llm_view(vote_decision(latest[k])) if k in latest else None for k in keys]


def suggestion(
    state: LoopState, position: int, llm: LLMView | None, best: int, p_wrong: float
) -> dict[str, Any]:
    """What a reviewer is shown: the LLM's view, the classifier's top 3, the best guess."""
    probs = state.scores.probs[position]
    top = np.argsort(-probs)[:3]
    names = state.label_set.names
    clf_text = f"classifier says {names[top[0]]} ({probs[top[0]]:.2f})"
    if llm is None:
        llm_text = "no LLM"
    elif llm["label"] is None:
        llm_text = "LLM abstained"
    else:
        llm_text = f"LLM says {llm['label']} ({llm['confidence']:.2f})"
    return {
        "first_opinion": "LLM" if state.labeller_mode == "llm" else "zero-shot",
        "llm": llm,
        "classifier": [[names[i], round(float(probs[i]), 4)] for i in top],
        "best": names[best] if best != NO_LABEL else None,
        "p_wrong": round(p_wrong, 4),
        "detail": f"{llm_text}, {clf_text}",
    }


def queue_entries(
    state: LoopState,
    positions: np.ndarray,
    reasons: Sequence[str],
    priority: np.ndarray,
    best: np.ndarray,
    p_wrong: np.ndarray,
    round_no: int | Sequence[int],
    llm: Sequence[LLMView | None] | None = None,
    reviews_needed: Sequence[int] | None = None,
) -> list[QueueEntry]:
    """One entry per item at `positions` (n,), with per-item reasons, priorities, best label
    index and P(wrong) (all (n,)); `round_no` one round for all or one per item."""
    n = len(positions)
    rounds = [round_no] * n if isinstance(round_no, int) else list(round_no)
    views = list(llm) if llm is not None else [None] * n
    needed = list(reviews_needed) if reviews_needed is not None else [1] * n
    keys = state.pool.keys  # once: each read of `pool` asks the store for its row count
    return [
        QueueEntry(
            int(keys[i]),
            reasons[j],
            float(priority[j]),
            rounds[j],
            suggestion(state, int(i), views[j], int(best[j]), float(p_wrong[j])),
            needed[j],
        )
        for j, i in enumerate(positions)
    ]
