"""`labelagent estimate`: the LLM calls, tokens and dollars of the run a plan describes, as an
upper bound (see `agent.app.plan`), in one sentence or as JSON on a clean stdout.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.app.commands import endpoint_line, resolve_llm
from agent.app.plan import FEWER_WHEN, Plan, llm_item_bound
from agent.app.preflight import refuse_empty
from agent.config import ProjectConfig
from agent.errors import InputError
from agent.llm.annotators import annotator_kind
from agent.routing.sources import current_labels
from agent.store.opening import open_store
from agent.store.protocol import ProjectStore


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Third-party chatter (litellm's "Provider List" banner for unknown models) goes to
    stderr, so that `estimate --json | jq` always reads clean JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def estimate_project(
    project: Path,
    config: ProjectConfig,
    llm: tuple[str | None, str | None],
    plan: Plan,
    items: int | None = None,
) -> dict[str, Any]:
    """Calls, tokens and cost of a run of `plan` with the LLM `llm` = (model, api_base);
    `items` prices that many items instead of the plan's bound."""
    config = resolve_llm(config, *llm)
    model = config.llm.model
    if model is None:
        raise InputError("no LLM model: pass --llm MODEL or set llm.model", field="--llm")
    if model.startswith(("simulated:", "replay:")):
        annotator_kind(model)  # a bad spec is refused here as in `run`
    with open_store(project) as store:
        refuse_empty(store, project)
        with stdout_to_stderr():
            info = _priced(store, config, plan, items)
            if config.llm.api_base is not None:  # a self-hosted endpoint: say what it takes
                from agent.llm.factory import make_backend

                info["endpoint"] = endpoint_line(make_backend(config.llm), store)
    info["summary"] = estimate_sentence(info)
    return info


def _priced(
    store: ProjectStore, config: ProjectConfig, plan: Plan, items: int | None
) -> dict[str, Any]:
    """estimate_cost over the plan's bound (or `items`), with the plan and the bound's source."""
    from agent.labeller.budget import estimate_cost

    texts = _selectable_texts(store)
    batch_size = plan.batch_size or config.batch_size
    paid = int(store.cache_totals()["calls"])
    bound = llm_item_bound(plan, batch_size, config.routing, len(texts), paid)
    n = items if items is not None else bound.items
    model = str(config.llm.model)
    avg = sum(map(len, texts)) / len(texts) if texts else 0.0
    lengths = [len(t) for t in texts[:n]]  # long texts are cut for the prompt: count them
    info = estimate_cost(model, store.label_set, n, avg, config.llm, text_lengths=lengths)
    if _costs_nothing(model):
        info["cost_usd"] = 0.0
        info["note"] = _without_cost_map_note(info["note"])
    return info | {
        "plan": asdict(plan) | {"batch_size": batch_size},
        "selectable_items": len(texts),
        "upper_bound": items is None,
        "limited_by": "--items" if items is not None else bound.limited_by,
    }


def _costs_nothing(model: str) -> bool:
    """The evaluation stand-ins and the in-process local model are not billed."""
    return model == "local" or model.startswith(("simulated:", "replay:", "local:"))


def _selectable_texts(store: ProjectStore) -> list[str]:
    """Texts of the items a round may select: no label and not in the review queue."""
    labelled = {key for key, now in current_labels(store).items() if now.label is not None}
    taken = labelled | set(store.queued_keys())
    return [it.text for batch in store.iter_items() for it in batch if it.key not in taken]


def _without_cost_map_note(note: str | None) -> str | None:
    kept = [part for part in (note or "").split("; ") if part and "cost map" not in part]
    return "; ".join(kept) or None


def estimate_sentence(info: dict[str, Any]) -> str:
    """The estimate in one sentence, saying what is an upper bound and why."""
    cost = info["cost_usd"]
    price = f"${cost:,.4f}" if cost is not None else "an unknown cost (not in litellm's cost map)"
    tokens = info["prompt_tokens"] + info["completion_tokens"]
    head = "at most " if info["upper_bound"] else ""
    return (
        f"{info['model']}: {head}{info['calls']:,} LLM calls on {head}{info['items']:,} items "
        f"(limit: {info['limited_by']}), about {tokens:,} tokens, {price}"
        + (f"; fewer when {FEWER_WHEN}." if info["upper_bound"] else ".")
    )
