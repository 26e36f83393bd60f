"""Budgets in calls and dollars, and cost estimates from litellm's local cost map."""

from __future__ import annotations

import pytest

from agent.config import LLMConfig
from agent.errors import BudgetExceededError
from agent.labeller.budget import Budget, estimate_cost
from agent.types import LabelSet

LABELS = LabelSet(("billing", "shipping", "tech"), ("money", "parcels", "devices"))


def test_call_budget_counts_calls_in_flight() -> None:
    budget = Budget(max_calls=2)
    first, second = budget.reserve(), budget.reserve()
    with pytest.raises(BudgetExceededError, match="2 calls"):
        budget.reserve()
    budget.settle(first, None)  # a failed call is not paid and frees its slot
    third = budget.reserve()
    budget.settle(second, 0.0)
    budget.settle(third, 0.0)
    assert budget.calls == 2
    with pytest.raises(BudgetExceededError) as info:
        budget.reserve()
    assert info.value.usage["calls"] == 2


def test_dollar_budget_stops_before_the_call_that_would_overspend() -> None:
    budget = Budget(max_usd=1.0)
    assert budget.needs_probe
    budget.settle(budget.reserve(), 0.3)
    assert not budget.needs_probe and budget.mean_call_usd == pytest.approx(0.3)
    budget.settle(budget.reserve(), 0.3)
    reserved = budget.reserve()  # 0.6 spent + 0.3 expected <= 1.0
    with pytest.raises(BudgetExceededError, match="dollar budget"):
        budget.reserve()  # 0.6 + 0.3 reserved + 0.3 > 1.0
    budget.settle(reserved, 0.3)
    assert budget.spent_usd == pytest.approx(0.9)


def test_unlimited_budget_never_stops() -> None:
    budget = Budget()
    for _ in range(1000):
        budget.settle(budget.reserve(), 1.0)
    assert budget.calls == 1000 and not budget.needs_probe


def test_estimate_prices_a_known_model_from_the_local_cost_map() -> None:
    cfg = LLMConfig(few_shot_k=4, items_per_call=1)
    est = estimate_cost("openai/gpt-4o-mini", LABELS, 1000, 200.0, cfg)
    assert est["calls"] == 1000
    assert 150_000 < est["prompt_tokens"] < 600_000  # ~5 texts of 200 chars + instructions
    assert 20_000 < est["completion_tokens"] < 80_000
    expected = est["prompt_tokens"] * 0.15e-6 + est["completion_tokens"] * 0.6e-6
    assert est["cost_usd"] == pytest.approx(expected, rel=0.01)
    assert est["note"] is None


def test_estimate_follows_batching_and_sampling() -> None:
    single = estimate_cost("openai/gpt-4o-mini", LABELS, 100, 100.0, LLMConfig(few_shot_k=0))
    batched = estimate_cost(
        "openai/gpt-4o-mini", LABELS, 100, 100.0, LLMConfig(few_shot_k=0, items_per_call=8)
    )
    assert batched["calls"] == 13 and batched["prompt_tokens"] < single["prompt_tokens"] / 3
    sampled = estimate_cost(
        "openai/gpt-4o-mini",
        LABELS,
        100,
        100.0,
        LLMConfig(few_shot_k=0, samples=5),
        confidence_method="consistency",
    )
    assert sampled["calls"] == 100
    assert sampled["completion_tokens"] == 5 * single["completion_tokens"]


def test_estimate_for_a_model_outside_the_cost_map_has_no_price() -> None:
    est = estimate_cost("hosted_vllm/my-finetune", LABELS, 10, 50.0, LLMConfig())
    assert est["cost_usd"] is None and "cost map" in est["note"]
    assert est["prompt_tokens"] > 0


def test_estimate_samples_models_without_logprobs() -> None:
    cfg = LLMConfig(few_shot_k=0, samples=5)
    claude = estimate_cost("anthropic/claude-haiku-4-5", LABELS, 10, 100.0, cfg)
    gpt = estimate_cost("openai/gpt-4o-mini", LABELS, 10, 100.0, cfg)
    assert claude["confidence_method"] == "consistency" and gpt["confidence_method"] == "logprob"
    assert claude["completion_tokens"] > 3 * gpt["completion_tokens"]
    assert claude["cost_usd"] is not None and claude["cost_usd"] > gpt["cost_usd"]
