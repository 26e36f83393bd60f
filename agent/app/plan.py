"""The plan of a run (the flags of `run` that bound its work, which `estimate` takes too) and
the most items such a run can send to the LLM.

A round selects `batch_size` items (`agent.loop.job._round_size`): at most
`routing.llm_probe` of them while fewer audits of the LLM are in than trust needs (then, for an
LLM trailing the classifier, a probe's worth doubling with each round in a row that asks it),
and never more than the LLM budget has calls left; only items with no label that are not
waiting for review can be selected, and the final pass asks no LLM. So rounds x batch size,
capped by those, bounds the LLM's items from above. Fewer are asked when audits show the LLM adds
nothing, the target accuracy is reached, the pool runs dry, or a reply comes from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import RoutingConfig

DEFAULT_ROUNDS = 10
FEWER_WHEN = (
    "audits show the LLM adds nothing, the target is met, selection runs dry, or a reply is "
    "already cached"
)


@dataclass(frozen=True)
class Plan:
    """What a run may do; None means no limit (batch_size None: the project's batch_size)."""

    rounds: int = DEFAULT_ROUNDS
    batch_size: int | None = None
    human_budget: int | None = None
    llm_budget: int | None = None
    target_accuracy: float | None = None


@dataclass(frozen=True)
class LLMBound:
    """The most items the plan sends to the LLM, and what sets that bound."""

    items: int
    per_round: int
    limited_by: str


def llm_item_bound(
    plan: Plan, batch_size: int, routing: RoutingConfig, candidates: int, paid_calls: int
) -> LLMBound:
    """Upper bound on the items a run of `plan` asks the LLM about. `candidates`: items with
    no label, not queued; `paid_calls`: the project's paid calls so far (budgets are totals)."""
    per_round = batch_size
    if plan.human_budget is not None and plan.human_budget < max(1, routing.trust_audits // 4):
        per_round = min(per_round, routing.llm_probe)  # too few audits ever to trust the LLM
    bounds = {
        f"{plan.rounds} rounds of at most {per_round}": plan.rounds * per_round,
        f"{candidates} items without a label or a place in the review queue": candidates,
    }
    if plan.llm_budget is not None:
        left = max(0, plan.llm_budget - paid_calls)
        bounds[f"the LLM budget's {left} calls left"] = left
    limited_by = min(bounds, key=lambda name: bounds[name])
    return LLMBound(bounds[limited_by], per_round, limited_by)
