"""Labeller: structured output and text fallback, re-asks, abstains, the three confidence
methods, the cache (in memory and on disk), budgets, multi-item calls and concurrency."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import LLMConfig
from agent.errors import BudgetStop, LLMError, LLMValidationError, StoreError
from agent.labeller.cache import CacheRow
from agent.labeller.labeller import Labeller
from agent.labeller.outcomes import call_failed
from agent.llm.item_markup import ABSTAIN, find_items
from agent.llm.protocol import ChatChoice, ChatRequest, ChatResponse, TokenLogprob, Usage
from agent.llm.scripted import ScriptedBackend
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, text_hash

LABELS = LabelSet(("billing", "shipping", "tech"), ("money", "parcels", "devices"))


def items(*texts: str) -> list[Item]:
    return [Item(i + 1, f"id{i}", t, text_hash(t)) for i, t in enumerate(texts)]


def answer(label: str, confidence: float = 0.8, rationale: str = "because") -> str:
    return json.dumps({"label": label, "confidence": confidence, "rationale": rationale})


def by_text(mapping: dict[str, str]):  # type: ignore[no-untyped-def]
    """A reply function: the answer for the single item in the prompt, by its text."""

    def reply(request: ChatRequest) -> str:
        ((_, text),) = find_items(request.messages)
        return answer(mapping[text])

    return reply


def cfg(**overrides: object) -> LLMConfig:
    base: dict[str, object] = {"samples": 1, "max_reasks": 2}
    return LLMConfig(**{**base, **overrides})


def test_structured_request_carries_the_label_enum_and_validates() -> None:
    backend = ScriptedBackend([answer("shipping", 0.7, "parcel late")])
    labeller = Labeller(backend, LABELS, cfg(), None)
    (decision,) = labeller.label_items_sync(items("where is my parcel"))
    schema = backend.requests[0].response_schema
    assert schema is not None
    assert schema["properties"]["label"]["enum"] == ["billing", "shipping", "tech", ABSTAIN]
    assert schema["additionalProperties"] is False
    assert decision.label == "shipping" and decision.rationale == "parcel late"
    assert decision.prompt_hash == labeller.prompt_hash and decision.model == "scripted"


def test_text_fallback_parses_the_first_json_object_in_prose() -> None:
    reply = 'Sure! Here is my answer:\n```json\n{"label": "Billing", "confidence": 0.6}\n```'
    backend = ScriptedBackend([reply], supports_json_schema=False)
    (decision,) = Labeller(backend, LABELS, cfg(), None).label_items_sync(items("refund me"))
    assert backend.requests[0].response_schema is None
    assert decision.label == "billing"  # case forgiven, still constrained to the set


def test_reask_feeds_the_validation_error_back_and_succeeds() -> None:
    backend = ScriptedBackend([answer("refunds"), answer("billing")])
    labeller = Labeller(backend, LABELS, cfg(), None)
    (decision,) = labeller.label_items_sync(items("refund me"))
    assert decision.label == "billing"
    second = backend.requests[1].messages
    assert second[-2] == {"role": "assistant", "content": answer("refunds")}
    assert "label" in second[-1]["content"] and "billing" in second[-1]["content"]
    assert labeller.stats.reasks == 1 and labeller.stats.calls == 2
    assert decision.usage["calls"] == 2


def test_explicit_abstain_is_label_none() -> None:
    backend = ScriptedBackend([answer(ABSTAIN, 0.4, "unclear")])
    labeller = Labeller(backend, LABELS, cfg(), None)
    (decision,) = labeller.label_items_sync(items("hmm"))
    assert decision.label is None and decision.rationale == "unclear"
    assert labeller.stats.abstains == 1


def test_item_that_never_validates_becomes_an_abstain_with_the_error() -> None:
    replies = {"good": answer("tech"), "bad": answer("nonsense")}
    backend = ScriptedBackend(lambda r: replies[find_items(r.messages)[0][1]])
    labeller = Labeller(backend, LABELS, cfg(max_reasks=1), None)
    good, bad = labeller.label_items_sync(items("good", "bad"))
    assert good.label == "tech"
    assert bad.label is None and bad.rationale == "invalid output after 2 attempts"
    assert "nonsense" in bad.usage["raw"] and "label" in bad.usage["error"]
    assert labeller.stats.failures == 1 and labeller.stats.reasks == 1


def test_every_item_failing_raises_with_attempts_and_raw_reply() -> None:
    backend = ScriptedBackend(lambda r: "I cannot answer that.")
    with pytest.raises(LLMValidationError) as info:
        Labeller(backend, LABELS, cfg(max_reasks=2), None).label_items_sync(items("x"))
    assert info.value.attempts == 3 and info.value.raw == "I cannot answer that."
    assert info.value.usage["calls"] == 3


def _logprob_reply(request: ChatRequest) -> ChatResponse:
    """`{"label": "tech", ...}` whose label is spelt by two tokens of logprob -0.1 each."""
    head, tail = '{"label": "', '", "confidence": 0.99, "rationale": "device"}'
    tokens = [
        TokenLogprob(head, -0.01),
        TokenLogprob("te", -0.1, [("te", -0.1), ("bill", -2.5)]),
        TokenLogprob("ch", -0.1),
        TokenLogprob(tail, -0.02),
    ]
    text = head + "tech" + tail
    return ChatResponse([ChatChoice(text, tokens)], Usage(10, 5), 0.0, "lp")


def test_logprob_confidence_uses_the_label_tokens() -> None:
    backend = ScriptedBackend(_logprob_reply, supports_logprobs=True)
    (decision,) = Labeller(backend, LABELS, cfg(samples=5), None).label_items_sync(items("x"))
    assert backend.requests[0].logprobs and backend.requests[0].top_logprobs
    assert backend.requests[0].n == 1
    assert decision.confidence_method == "logprob"
    assert decision.confidence == pytest.approx(math.exp(-0.2))
    assert decision.usage["stated_confidence"] == pytest.approx(0.99)


def test_missing_logprobs_fall_back_to_stated_and_say_so() -> None:
    backend = ScriptedBackend([answer("tech", 0.66)], supports_logprobs=True)
    (decision,) = Labeller(backend, LABELS, cfg(), None).label_items_sync(items("x"))
    assert decision.confidence_method == "stated" and decision.confidence == 0.66
    assert decision.usage["stated_only"] and decision.usage["confidence_note"]


def test_self_consistency_vote_share_over_n_samples() -> None:
    votes = [answer("tech"), answer("billing"), answer("tech"), answer("nope"), answer("tech")]
    backend = ScriptedBackend([votes])
    (decision,) = Labeller(backend, LABELS, cfg(samples=5), None).label_items_sync(items("x"))
    request = backend.requests[0]
    assert request.n == 5 and request.temperature == pytest.approx(0.7)
    assert decision.confidence_method == "consistency"
    assert decision.label == "tech" and decision.confidence == pytest.approx(3 / 5)


def test_self_consistency_makes_more_calls_when_n_is_ignored() -> None:
    replies = [[answer("tech")], [answer("tech")], [answer("shipping")], [answer("tech")]]
    backend = ScriptedBackend(replies)
    (decision,) = Labeller(backend, LABELS, cfg(samples=4), None).label_items_sync(items("x"))
    assert backend.calls == 4 and [r.n for r in backend.requests] == [4, 3, 2, 1]
    assert decision.confidence == pytest.approx(0.75)


def test_stated_confidence_is_the_flagged_last_resort() -> None:
    backend = ScriptedBackend([answer("billing", 0.55)])
    (decision,) = Labeller(backend, LABELS, cfg(samples=1), None).label_items_sync(items("x"))
    assert decision.confidence_method == "stated" and decision.usage["stated_only"] is True


def test_cache_hit_makes_zero_calls_in_memory_and_across_restarts(tmp_path: Path) -> None:
    texts = items("a parcel", "a refund", "a parcel")
    reply = by_text({"a parcel": "shipping", "a refund": "billing"})
    store = Store.create(tmp_path, LABELS)
    backend = ScriptedBackend(reply, cost_per_token_usd=1e-6)
    first = Labeller(backend, LABELS, cfg(), store).label_items_sync(texts)
    assert backend.calls == 2  # the duplicate text is asked once
    again = Labeller(backend, LABELS, cfg(), store).label_items_sync(texts)
    assert backend.calls == 2 and all(d.cached for d in again)
    assert [d.label for d in again] == [d.label for d in first]
    totals = store.cache_totals()
    store.close()

    reopened = Store.open(tmp_path)
    fresh_backend = ScriptedBackend([])
    labeller = Labeller(fresh_backend, LABELS, cfg(), reopened)
    restarted = labeller.label_items_sync(texts)
    assert fresh_backend.calls == 0 and labeller.stats.cache_hits == 3
    assert [d.label for d in restarted] == ["shipping", "billing", "shipping"]
    assert totals["calls"] == 2 and totals["cost_usd"] > 0
    reopened.close()


def test_cache_key_changes_with_examples_and_parameters() -> None:
    backend = ScriptedBackend([])
    labeller = Labeller(backend, LABELS, cfg(), None)
    base = labeller.cache_key("h", [])
    assert labeller.cache_key("h", [("t", "billing")]) != base
    warmer = Labeller(backend, LABELS, cfg(temperature=0.5), None)
    assert warmer.cache_key("h", []) != base


def test_finished_replies_are_cached_even_when_a_later_call_fails() -> None:
    store = Store.memory(LABELS)
    backend = ScriptedBackend([answer("tech"), LLMError("HTTP 500 after 5 retries", attempts=5)])
    labeller = Labeller(backend, LABELS, cfg(concurrency=1), store)
    done = labeller.label_items_sync(items("laptop", "phone"))  # a failed call: the item only
    assert [d.label for d in done] == ["tech", None] and call_failed(done[1])
    assert labeller.stats.failed_items == 1 and labeller.stats.failures == 0
    retry = ScriptedBackend([answer("tech")])
    decisions = Labeller(retry, LABELS, cfg(), store).label_items_sync(items("laptop", "phone"))
    assert retry.calls == 1 and decisions[0].cached and not decisions[1].cached


def test_call_budget_stops_cleanly_and_keeps_what_was_done() -> None:
    store = Store.memory(LABELS)
    backend = ScriptedBackend(lambda r: answer("tech"))
    labeller = Labeller(backend, LABELS, cfg(budget_calls=2, concurrency=1), store)
    with pytest.raises(BudgetStop) as info:
        labeller.label_items_sync(items("a", "b", "c", "d"))
    done = [d for d in info.value.decisions if d is not None]
    assert backend.calls == 2 and len(done) == 2
    assert store.cache_totals()["calls"] == 2


def test_dollar_budget_probes_one_call_then_stops_before_overspending() -> None:
    backend = ScriptedBackend(lambda r: answer("tech"), cost_per_token_usd=1e-4)
    labeller = Labeller(backend, LABELS, cfg(budget_usd=0.2, concurrency=8), None)
    with pytest.raises(BudgetStop):
        labeller.label_items_sync(items(*(f"text {i}" for i in range(40))))
    per_call = labeller.budget.mean_call_usd
    assert 0 < labeller.budget.spent_usd <= 0.2 + per_call
    assert labeller.budget.spent_usd + per_call > 0.2 - per_call


def _batch_reply(request: ChatRequest) -> str:
    """A multi-item answer whose item 2 carries a label outside the set; single items pass."""
    found = find_items(request.messages)
    if len(found) == 1:
        return answer("shipping")
    entries = [
        {"n": n, "label": "bogus" if n == 2 else "billing", "confidence": 0.9, "rationale": "r"}
        for n, _ in found
    ]
    return json.dumps({"items": entries})


def test_multi_item_calls_are_validated_item_by_item() -> None:
    backend = ScriptedBackend(_batch_reply)
    labeller = Labeller(backend, LABELS, cfg(items_per_call=3), None)
    decisions = labeller.label_items_sync(items("one", "two", "three", "four"))
    assert [d.label for d in decisions] == ["billing", "shipping", "billing", "shipping"]
    assert [len(find_items(r.messages)) for r in backend.requests] == [3, 1, 1]
    batch_schema = backend.requests[0].response_schema
    assert batch_schema is not None and "items" in batch_schema["properties"]
    assert backend.requests[0].max_tokens == 3 * labeller.cfg.max_tokens
    singles = {find_items(r.messages)[0][1] for r in backend.requests[1:]}
    assert singles == {"two", "four"}  # the bad item alone, and the last chunk of one
    assert decisions[0].usage["calls"] == pytest.approx(1 / 3)


class SlowBackend:
    """Answers after a short sleep and records how many calls overlap."""

    model = "slow"
    supports_json_schema = True
    supports_logprobs = False

    def __init__(self) -> None:
        self.active = self.peak = self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.active += 1
        self.calls += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        return ChatResponse([ChatChoice(answer("tech"))], Usage(1, 1))

    async def aclose(self) -> None:
        return None


def test_calls_run_concurrently_within_the_limit() -> None:
    backend = SlowBackend()
    labeller = Labeller(backend, LABELS, cfg(concurrency=4), None)
    decisions = labeller.label_items_sync(items(*(f"t{i}" for i in range(20))))
    assert len(decisions) == 20 and backend.calls == 20
    assert backend.peak == 4


def test_examples_reach_the_prompt_capped_at_few_shot_k() -> None:
    backend = ScriptedBackend([answer("tech")])
    shots = [[("my laptop broke", "tech"), ("refund please", "billing"), ("x", "shipping")]]
    Labeller(backend, LABELS, cfg(few_shot_k=2), None).label_items_sync(items("phone"), shots)
    user = backend.requests[0].messages[1]["content"]
    assert '<example label="tech">\nmy laptop broke\n</example>' in user
    assert "refund please" in user and '<example label="shipping">' not in user


class GroupCache:
    """A cache with a slow group write (like one fsync per transaction), recording groups."""

    def __init__(self, fail: bool = False) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.groups: list[int] = []
        self.fail = fail

    def cache_get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def cache_put(self, *row: Any) -> None:
        raise AssertionError("a cache with cache_put_many gets groups")

    def cache_put_many(self, rows: list[CacheRow]) -> None:
        time.sleep(0.02)
        if self.fail:
            raise StoreError("disk full")
        self.groups.append(len(rows))
        self.rows.update({row[0]: row[2] for row in rows})


def test_cache_writes_are_grouped_off_the_event_loop() -> None:
    cache = GroupCache()
    backend = SlowBackend()
    labeller = Labeller(backend, LABELS, cfg(concurrency=16), cache)
    decisions = labeller.label_items_sync(items(*(f"t{i}" for i in range(48))))
    assert len(cache.rows) == 48 and sum(cache.groups) == 48
    assert max(cache.groups) > 1  # answers that validated during a write share the next one
    assert backend.peak == 16  # slow writes did not hold the calls back
    again = Labeller(SlowBackend(), LABELS, cfg(), cache).label_items_sync(items("t0", "t47"))
    assert all(d.cached for d in again) and again[0].label == decisions[0].label


def test_a_cache_write_failure_is_raised_not_swallowed() -> None:
    with pytest.raises(StoreError, match="disk full"):
        Labeller(SlowBackend(), LABELS, cfg(), GroupCache(fail=True)).label_items_sync(
            items("x", "y")
        )
