"""Both live adapters over real HTTP against the local test server, plus the retry machinery.

Nothing is patched: OpenAIBackend (openai SDK) and LiteLLMBackend (litellm.acompletion) talk
to an aiohttp server on 127.0.0.1 that injects each fault (429, 5xx, hangs, broken bodies).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from llm_fixtures import ADAPTERS, FAST_RETRY, BackendFactory

from agent.config import LLMConfig
from agent.errors import ConfigError, LLMError
from agent.llm.factory import make_backend
from agent.llm.litellm_backend import LiteLLMBackend
from agent.llm.openai_backend import OpenAIBackend
from agent.llm.pricing import import_litellm
from agent.llm.protocol import ChatBackend, ChatRequest, ChatResponse
from agent.llm.resilience import CallGuard, RetryPolicy, TokenBucket, parse_retry_after, redact
from agent.llm.scripted import ScriptedBackend
from agent.llm.test_server import LLMTestServer
from agent.types import LabelSet

pytest_plugins = ("llm_fixtures",)

LABELS = ["billing", "shipping", "tech"]
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": LABELS},
        "confidence": {"type": "number"},
        "rationale": {"type": "string"},
    },
    "required": ["label", "confidence", "rationale"],
    "additionalProperties": False,
}


def ask(**options: Any) -> ChatRequest:
    messages = [{"role": "user", "content": "Label: <item>my parcel never came</item>"}]
    return ChatRequest(messages=messages, response_schema=SCHEMA, **options)


def run(backend: ChatBackend, *requests: ChatRequest) -> list[ChatResponse]:
    """Send the requests concurrently on a fresh event loop, then close the backend."""

    async def go() -> list[ChatResponse]:
        try:
            return await asyncio.gather(*(backend.complete(r) for r in requests))
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_happy_path_sends_strict_schema_and_maps_the_reply(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    (response,) = run(llm_backend(adapter), ask())
    assert '"label": "billing"' in response.choices[0].text
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "openai/test-model"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    body = llm_server.stats.bodies[0]
    assert body["model"] == "test-model"  # provider prefix stripped on the wire
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["label"]["enum"] == LABELS
    assert body["max_tokens"] == 256 and llm_server.stats.requests == 1


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_no_response_format_without_schema_support(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    run(llm_backend(adapter, supports_json_schema=False), ask())
    assert "response_format" not in llm_server.stats.bodies[0]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_label_token_logprob_and_rivals_are_parsed(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.knobs.label_prob = 0.7
    (response,) = run(llm_backend(adapter), ask(logprobs=True, top_logprobs=3))
    assert llm_server.stats.bodies[0]["logprobs"] is True
    assert llm_server.stats.bodies[0]["top_logprobs"] == 3
    tokens = response.choices[0].logprobs
    assert tokens is not None
    assert "".join(t.token for t in tokens) == response.choices[0].text
    label = next(t for t in tokens if t.token == "billing")
    assert label.logprob == pytest.approx(math.log(0.7))
    assert [name for name, _ in label.top] == LABELS
    assert math.exp(label.top[1][1]) == pytest.approx(0.15)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_no_logprobs_when_the_server_gives_none(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.knobs.logprobs = False
    (response,) = run(llm_backend(adapter), ask(logprobs=True, top_logprobs=3))
    assert response.choices[0].logprobs is None


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_n_samples_come_back_as_choices(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    answers = iter(["a", "b", "c"])
    llm_server.policy = lambda body: next(answers)
    (response,) = run(llm_backend(adapter), ask(n=3, temperature=0.7))
    assert [c.text for c in response.choices] == ["a", "b", "c"]
    assert llm_server.stats.bodies[0]["n"] == 3 and llm_server.stats.requests == 1


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_429_waits_for_retry_after_then_succeeds(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.script("429:0.4")
    start = time.perf_counter()
    (response,) = run(llm_backend(adapter), ask())
    assert time.perf_counter() - start >= 0.4
    assert response.choices[0].text and llm_server.stats.requests == 2


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_server_errors_are_retried(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.script("500", "503", "502")
    (response,) = run(llm_backend(adapter), ask())
    assert response.choices[0].text and llm_server.stats.requests == 4


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_hangs_time_out_and_end_in_a_clear_error(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    attempts = FAST_RETRY.max_retries + 1
    llm_server.script(*["hang:5"] * attempts)
    with pytest.raises(LLMError) as caught:
        run(llm_backend(adapter, timeout_s=0.2), ask())
    message = str(caught.value)
    assert "openai/test-model" in message and "timeout" in message
    assert f"after {attempts} attempt(s)" in message and caught.value.attempts == attempts
    assert llm_server.stats.requests == attempts


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_hang_then_an_answer_succeeds(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.script("hang:5")
    (response,) = run(llm_backend(adapter, timeout_s=0.2), ask())
    assert response.choices[0].text and llm_server.stats.requests == 2


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_malformed_bodies_are_retried_then_reported(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.script("malformed", "empty")
    (response,) = run(llm_backend(adapter), ask())
    assert response.choices[0].text and llm_server.stats.requests == 3
    llm_server.reset()
    llm_server.script(*["malformed"] * 10)
    with pytest.raises(LLMError, match="attempt"):
        run(llm_backend(adapter), ask())
    assert llm_server.stats.requests == FAST_RETRY.max_retries + 1


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_wrong_key_fails_at_once_and_the_key_is_not_in_the_error(
    llm_backend: BackendFactory,
    llm_server: LLMTestServer,
    adapter: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-wrong-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    llm_server.knobs.api_key = "sk-right-key"
    with pytest.raises(LLMError) as caught:
        run(llm_backend(adapter), ask())
    assert "401" in str(caught.value) and "not retryable" in str(caught.value)
    assert secret not in str(caught.value) and secret not in (caught.value.raw or "")
    assert llm_server.stats.requests == 1
    assert llm_server.stats.headers[0]["authorization"] == f"Bearer {secret}"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_refused_connections_are_retried_then_reported(
    llm_backend: BackendFactory, adapter: str
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    backend = llm_backend(adapter, api_base=f"http://127.0.0.1:{closed_port}/v1")
    with pytest.raises(LLMError, match="connection") as caught:
        run(backend, ask())
    assert caught.value.attempts == FAST_RETRY.max_retries + 1


@pytest.mark.parametrize("status", ["400", "403", "404"])
def test_client_errors_are_not_retried(
    llm_backend: BackendFactory, llm_server: LLMTestServer, status: str
) -> None:
    llm_server.script(status)
    with pytest.raises(LLMError, match=f"HTTP {status}"):
        run(llm_backend("openai"), ask())
    assert llm_server.stats.requests == 1


def test_per_request_fault_header(llm_backend: BackendFactory, llm_server: LLMTestServer) -> None:
    backend = llm_backend("openai", default_headers={"x-test-fault": "500"})
    with pytest.raises(LLMError, match="HTTP 500"):
        run(backend, ask())
    assert llm_server.stats.faults["500"] == FAST_RETRY.max_retries + 1


def test_retry_after_longer_than_allowed_fails_at_once(
    llm_backend: BackendFactory, llm_server: LLMTestServer
) -> None:
    llm_server.script("429:3600")
    patient = RetryPolicy(max_retries=3, base_delay_s=0.01, max_retry_after_s=1.0)
    with pytest.raises(LLMError, match="Retry-After beyond the allowed pause"):
        run(llm_backend("openai", retry=patient), ask())
    assert llm_server.stats.requests == 1


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_concurrency_limit_is_respected(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.knobs.latency_s = 0.05
    run(llm_backend(adapter, concurrency=3), *[ask() for _ in range(12)])
    assert llm_server.stats.requests == 12 and llm_server.stats.max_in_flight == 3


def test_rpm_limit_spaces_requests(llm_backend: BackendFactory, llm_server: LLMTestServer) -> None:
    start = time.perf_counter()
    run(llm_backend("openai", rpm=600), *[ask() for _ in range(15)])  # 10/s, burst of 10
    assert time.perf_counter() - start >= 0.45  # the last 5 wait 0.1 s each
    assert llm_server.stats.requests == 15


@pytest.mark.parametrize(("rpm", "slowest", "fastest"), [(600, 10.0, 0.45), (None, 0.2, 0.0)])
def test_rpm_limit_alone_decides_the_pace(rpm: int | None, slowest: float, fastest: float) -> None:
    """The same 15 instant calls through a guard with and without an RPM limit (no HTTP)."""
    guard = CallGuard(model="m", concurrency=15, rpm=rpm)

    async def instant() -> int:
        return 1

    async def go() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(guard.run(instant, lambda exc: None) for _ in range(15)))
        return time.perf_counter() - start

    assert fastest <= asyncio.run(go()) < slowest


def test_tpm_limit_charges_the_estimate_and_settles_on_usage(
    llm_backend: BackendFactory, llm_server: LLMTestServer
) -> None:
    llm_server.knobs.usage = (10, 10)
    llm_server.knobs.latency_s = 0.3
    backend = llm_backend("openai", tpm=60_000)  # 1000 tokens/s, burst 1000
    start = time.perf_counter()
    run(backend, ask(max_tokens=3000), ask(max_tokens=3000))  # ~3010 tokens estimated each
    assert time.perf_counter() - start >= 0.55  # the second waits until the first settles
    llm_server.knobs.latency_s = 0.0
    start = time.perf_counter()
    for _ in range(8):
        run(backend, ask(max_tokens=500))
    assert time.perf_counter() - start < 2.5  # settled at 20 tokens a call; at 510: > 3 s


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_usage_and_cost_come_from_the_local_cost_map(
    llm_backend: BackendFactory, llm_server: LLMTestServer, adapter: str
) -> None:
    llm_server.knobs.usage = (1000, 200)
    (priced,) = run(llm_backend(adapter, model="openai/gpt-4o-mini"), ask())
    prompt_usd, completion_usd = import_litellm().cost_per_token(
        model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=200
    )
    assert priced.usage.prompt_tokens == 1000 and priced.usage.completion_tokens == 200
    assert priced.cost_usd == pytest.approx(prompt_usd + completion_usd) and priced.cost_usd > 0
    (unpriced,) = run(llm_backend(adapter), ask())
    assert unpriced.cost_usd == 0.0


def test_a_backend_survives_successive_event_loops(
    llm_backend: BackendFactory, llm_server: LLMTestServer
) -> None:
    backend = llm_backend("openai", concurrency=2, rpm=6000)
    for _ in range(3):
        run(backend, ask(), ask(), ask())
    assert llm_server.stats.requests == 9


def test_models_endpoint_lists_the_served_models(llm_server: LLMTestServer) -> None:
    with urllib.request.urlopen(f"{llm_server.base_url}/models", timeout=5) as reply:
        listed = json.load(reply)
    assert [m["id"] for m in listed["data"]] == ["test-model"]


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("7") == 7.0 and parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after(format_datetime(now, usegmt=True), now=now.timestamp() + 5) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_backoff_is_full_jitter_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    rng = random.Random(0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert min(delays) >= 0.0 and max(delays) <= ceiling
        assert max(delays) > 0.8 * ceiling  # spread over the whole range, not a fixed step
    again = [policy.backoff(3, random.Random(7)) for _ in range(2)]
    assert again[0] == again[1]


def test_token_bucket_lets_a_burst_through_then_paces_and_carries_debt() -> None:
    async def timed(bucket: TokenBucket, amount: float) -> float:
        start = time.perf_counter()
        await bucket.acquire(amount)
        return time.perf_counter() - start

    async def go() -> list[float]:
        bucket = TokenBucket(rate_per_s=100.0, capacity=10.0)
        return [await timed(bucket, a) for a in (10, 5, 30, 1)]

    burst, paced, oversized, after_debt = asyncio.run(go())
    assert burst < 0.02 and 0.04 <= paced < 0.3
    assert 0.08 <= oversized < 0.4  # waits for a full bucket, then goes 20 tokens into debt
    assert after_debt >= 0.18


def test_redact_removes_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-very-secret-value")
    text = "failed with a-very-secret-value and sk-proj-abcdefghij and Bearer xyz123"
    cleaned = redact(text)
    assert "a-very-secret-value" not in cleaned and "sk-proj" not in cleaned
    assert "xyz123" not in cleaned and cleaned.startswith("failed with ***")


def test_scripted_backend_answers_from_a_queue_then_a_function_and_records() -> None:
    failure = LLMError("scripted outage", attempts=3)
    backend = ScriptedBackend(["one", ["a", "b"], failure], cost_per_token_usd=1e-3)
    first, second = run(backend, ask(n=2), ask(n=2))
    assert [c.text for c in first.choices] == ["one", "one"]
    assert [c.text for c in second.choices] == ["a", "b"]
    assert first.cost_usd > 0 and first.cost_usd == pytest.approx(first.usage.total_tokens * 1e-3)
    with pytest.raises(LLMError, match="scripted outage"):
        run(backend, ask())
    with pytest.raises(LLMError, match="ran out of replies at call 4"):
        run(backend, ask())
    assert backend.calls == 4 and backend.closed
    echo = ScriptedBackend(lambda request: request.messages[-1]["content"].upper())
    (loud,) = run(echo, ask())
    assert loud.choices[0].text == "LABEL: <ITEM>MY PARCEL NEVER CAME</ITEM>"
    assert echo.requests[0].response_schema == SCHEMA


@pytest.mark.parametrize(
    ("model", "api_base", "adapter", "expected"),
    [
        ("openai/gpt-4o-mini", None, "auto", OpenAIBackend),
        ("openai/llama3", "http://127.0.0.1:1/v1", "auto", OpenAIBackend),
        ("hosted_vllm/qwen", "http://127.0.0.1:1/v1", "auto", OpenAIBackend),
        ("llama3.1:8b", "http://127.0.0.1:1/v1", "auto", OpenAIBackend),
        ("anthropic/claude-3-5-haiku-20241022", None, "auto", LiteLLMBackend),
        ("ollama/llama3", "http://127.0.0.1:1", "auto", LiteLLMBackend),
        ("openai/gpt-4o-mini", None, "litellm", LiteLLMBackend),
    ],
)
def test_factory_picks_the_adapter(
    model: str, api_base: str | None, adapter: str, expected: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic")
    cfg = LLMConfig(model=model, api_base=api_base, adapter=adapter, max_retries=2, rpm=60)
    backend = make_backend(cfg)
    assert isinstance(backend, OpenAIBackend | LiteLLMBackend) and type(backend) is expected
    assert backend.model == model and backend.guard.retry.max_retries == 2


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (LLMConfig(), "no LLM model configured"),
        (LLMConfig(model="openai/gpt-4o-mini", adapter="magic"), "unknown adapter 'magic'"),
        (LLMConfig(model="hosted_vllm/qwen"), "need llm.api_base"),
        (LLMConfig(model="openai/gpt-4o-mini"), "OPENAI_API_KEY is not set"),
        (LLMConfig(model="anthropic/claude-3-5-haiku-20241022"), "ANTHROPIC_API_KEY not set"),
    ],
)
def test_factory_reports_bad_configs_at_once(
    cfg: LLMConfig, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=message):
        make_backend(cfg)


def test_factory_hands_eval_specs_to_the_annotators() -> None:
    labels = LabelSet(("billing", "shipping"))
    gold = {"my parcel never came": "shipping"}
    cfg = LLMConfig(model="simulated:acc=1.0,abstain=0.0,seed=3")
    backend = make_backend(cfg, label_set=labels, gold=gold)
    assert isinstance(backend, ChatBackend) and backend.model == cfg.model
