"""End to end over real HTTP: Labeller -> OpenAIBackend / LiteLLMBackend -> the OpenAI-compatible
test server on 127.0.0.1. Covers tokens, cost, cache hits (a second identical run makes zero
HTTP calls), re-asks on a bad label, logprobs on and off, n samples, faults and budgets."""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from llm_fixtures import make_test_backend

from agent.config import LLMConfig
from agent.errors import BudgetStop, LabellingFailed
from agent.labeller.labeller import Labeller
from agent.llm.item_markup import ABSTAIN, find_items
from agent.llm.protocol import ChatBackend
from agent.llm.test_server import LLMTestServer
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, text_hash

LABELS = LabelSet(("billing", "shipping", "tech"), ("money", "parcels", "devices"))
GOLD = {f"message {i} about {LABELS.names[i % 3]}": LABELS.names[i % 3] for i in range(24)}
PRICED_MODEL = "openai/gpt-4o-mini"  # in litellm's cost map; the server answers any name
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic chatter


def gold_policy(body: dict[str, Any]) -> str:
    """Answer each item of the prompt with its gold label (abstain on unknown texts)."""
    found = find_items(body["messages"])
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
    entries = [
        {"n": n, "label": GOLD.get(text, ABSTAIN), "confidence": 0.8, "rationale": "gold"}
        for n, text in found
    ]
    if len(entries) > 1 or "items" in schema.get("properties", {}):
        return json.dumps({"items": entries})
    entries[0].pop("n")
    return json.dumps(entries[0])


@pytest.fixture
def server(llm_server: LLMTestServer) -> LLMTestServer:
    """The shared test-server fixture, answering gold labels."""
    llm_server.policy = gold_policy
    return llm_server


def items(n: int = len(GOLD)) -> list[Item]:
    return [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(list(GOLD)[:n])]


def backend(server: LLMTestServer, adapter: str = "openai", **overrides: Any) -> ChatBackend:
    """An adapter on the test server, priced as gpt-4o-mini so that cost figures are real."""
    return make_test_backend(adapter, server.base_url, model=PRICED_MODEL, **overrides)


@pytest.mark.parametrize("adapter", ["openai", "litellm"])
def test_second_identical_run_makes_zero_http_calls(
    server: LLMTestServer, tmp_path: Path, adapter: str
) -> None:
    cfg = LLMConfig(samples=1, concurrency=8, few_shot_k=2)
    shots = [[("my card was charged twice", "billing")]] * len(GOLD)
    with Store.create(tmp_path, LABELS) as store:
        first = Labeller(backend(server, adapter), LABELS, cfg, store)
        decisions = first.label_items_sync(items(), shots)
        assert [d.label for d in decisions] == list(GOLD.values())
        assert server.stats.requests == len(GOLD) == first.stats.calls
        stats = first.stats
        assert stats.prompt_tokens > 0 and stats.completion_tokens > 0 and stats.cost_usd > 0
        assert store.cache_totals()["cost_usd"] == pytest.approx(stats.cost_usd)
    with Store.open(tmp_path) as store:
        second = Labeller(backend(server, adapter), LABELS, cfg, store)
        again = second.label_items_sync(items(), shots)
    assert server.stats.requests == len(GOLD)  # not one more request
    assert second.stats.calls == 0 and second.stats.cache_hits == len(GOLD)
    assert [d.label for d in again] == [d.label for d in decisions]


def test_logprobs_from_the_server_give_logprob_confidence(server: LLMTestServer) -> None:
    server.knobs.label_prob = 0.9
    labeller = Labeller(backend(server), LABELS, LLMConfig(samples=1), None)
    decisions = labeller.label_items_sync(items(3))
    body = server.stats.bodies[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    enum = body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"]
    assert enum == [*LABELS.names, ABSTAIN]
    assert {d.confidence_method for d in decisions} == {"logprob"}
    assert all(d.confidence == pytest.approx(0.9) for d in decisions)


def test_server_without_logprobs_falls_back_to_stated_and_flags_it(server: LLMTestServer) -> None:
    server.knobs.logprobs = False
    labeller = Labeller(backend(server), LABELS, LLMConfig(samples=1), None)
    (decision,) = labeller.label_items_sync(items(1))
    assert decision.confidence_method == "stated" and decision.usage["stated_only"]
    assert decision.confidence == pytest.approx(0.8)


def test_bad_label_from_the_server_is_reasked_with_the_error(server: LLMTestServer) -> None:
    server.script("bad_label")
    labeller = Labeller(backend(server), LABELS, LLMConfig(samples=1), None)
    (decision,) = labeller.label_items_sync(items(1))
    assert decision.label == "billing" and labeller.stats.reasks == 1
    reask = server.stats.bodies[1]["messages"]
    assert "not_a_label" in reask[-2]["content"] and "Input should be" in reask[-1]["content"]


def test_n_samples_over_http_give_the_vote_share(server: LLMTestServer) -> None:
    turns = count()

    def split_policy(body: dict[str, Any]) -> str:
        label = "tech" if next(turns) % 5 < 3 else "billing"
        return json.dumps({"label": label, "confidence": 0.9, "rationale": "r"})

    server.policy = split_policy
    sampler = backend(server, supports_logprobs=False)
    labeller = Labeller(sampler, LABELS, LLMConfig(samples=5), None)
    (decision,) = labeller.label_items_sync(items(1))
    assert server.stats.requests == 1 and server.stats.bodies[0]["n"] == 5
    assert decision.label == "tech" and decision.confidence == pytest.approx(0.6)
    assert decision.confidence_method == "consistency"


def test_transient_faults_are_retried_below_the_labeller(server: LLMTestServer) -> None:
    server.script("429:0", "500", "malformed")
    labeller = Labeller(backend(server), LABELS, LLMConfig(samples=1), None)
    (decision,) = labeller.label_items_sync(items(1))
    assert decision.label == "billing"
    assert server.stats.requests == 4 and labeller.stats.calls == 1


def test_multi_item_calls_over_http(server: LLMTestServer) -> None:
    labeller = Labeller(backend(server), LABELS, LLMConfig(samples=1, items_per_call=8), None)
    decisions = labeller.label_items_sync(items())
    assert [d.label for d in decisions] == list(GOLD.values())
    assert server.stats.requests == 3


def test_call_budget_over_http_stops_and_keeps_the_paid_answers(
    server: LLMTestServer, tmp_path: Path
) -> None:
    cfg = LLMConfig(samples=1, budget_calls=5, concurrency=4)
    with Store.create(tmp_path, LABELS) as store:
        with pytest.raises(BudgetStop) as info:
            Labeller(backend(server), LABELS, cfg, store).label_items_sync(items())
        assert server.stats.requests == 5
        assert sum(d is not None for d in info.value.decisions) == 5
        assert store.cache_totals()["calls"] == 5


def test_a_dead_endpoint_fails_clearly_and_keeps_what_was_done(
    server: LLMTestServer, tmp_path: Path
) -> None:
    server.script("ok", *["500"] * 8)  # then two calls in a row fail all 1 + 3 attempts
    cfg = LLMConfig(samples=1, concurrency=1, stop_after_failures=2)
    with Store.create(tmp_path, LABELS) as store:
        with pytest.raises(LabellingFailed, match="HTTP 500") as info:
            Labeller(backend(server), LABELS, cfg, store).label_items_sync(items(4))
        done = [d.label if d else None for d in info.value.decisions]
        assert done == ["billing", None, None, None]
        assert "2 calls in a row" in str(info.value)
        assert "1 of 4 items labelled" in str(info.value)
        assert store.cache_totals()["calls"] == 1
        assert server.stats.requests == 1 + 8  # the fourth item is never sent
