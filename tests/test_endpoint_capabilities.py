"""Endpoints that refuse json_schema, n or logprobs: fall back, never retry a refusal, remember.

Against the real HTTP test server in modes that refuse features the way llama-cpp-python's
server, vLLM and OpenAI do; and concurrency that fits a server answering one call at a time.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from llm_fixtures import FAST_RETRY, TEST_MODEL, make_test_backend

from agent.config import LLMConfig
from agent.labeller.labeller import Labeller
from agent.llm.capabilities import Capabilities, ensure
from agent.llm.concurrency import ConcurrencyLimit
from agent.llm.openai_backend import OpenAIBackend
from agent.llm.protocol import ChatRequest
from agent.llm.refusals import RefusedField, refused_field
from agent.llm.resilience import failure_for_status
from agent.llm.test_server import LLMTestServer
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, text_hash

LABELS = LabelSet(("billing", "shipping", "other"))
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": list(LABELS.names)}},
    "required": ["label"],
    "additionalProperties": False,
}
ASK = ChatRequest(
    messages=[{"role": "system", "content": "Label it."}, {"role": "user", "content": "hi"}],
    response_schema=SCHEMA,
)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _once(backend: OpenAIBackend, request: ChatRequest = ASK):  # type: ignore[no-untyped-def]
    try:
        return await backend.complete(request)
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("response_format.type: Input should be 'text' or 'json_object'", "response_format"),
        ("[{'loc': ('body', 'response_format', 'type')}]", "response_format"),
        ("Unsupported parameter: 'logprobs' is not supported with this model.", "logprobs"),
        ("top_logprobs must be between 0 and 20", "top_logprobs"),
        ("n must be 1 when using greedy sampling, got n=5", "n"),
        ("injected HTTP 500", None),
        ("the engine crashed in the middle of generation", None),
    ],
)
def test_the_refused_field_is_read_from_the_body(body: str, field: str | None) -> None:
    assert refused_field(body) == field


def test_a_5xx_naming_a_field_is_not_transient_but_a_bare_5xx_is() -> None:
    named = failure_for_status(500, "response_format.type: Input should be 'text'", None)
    assert named.field == "response_format" and not named.retryable
    assert failure_for_status(500, "out of memory", None).retryable
    assert failure_for_status(429, "slow down, n is too high", "1").retryable


def test_json_schema_refused_falls_back_to_json_object_with_the_schema_in_the_prompt() -> None:
    with LLMTestServer(refuse=("json_schema",)) as server:
        response = run(_once(make_test_backend("openai", server.base_url)))
        refused, accepted = server.stats.bodies
    assert json.loads(response.choices[0].text)["label"] == "billing"
    assert refused["response_format"]["type"] == "json_schema"
    assert accepted["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert '"enum":["billing","shipping","other"]' in accepted["messages"][0]["content"]
    assert server.stats.faults["refused"] == 1 and server.stats.requests == 2  # no retry


@pytest.mark.parametrize("adapter", ["openai", "litellm"])
def test_no_response_format_at_all_falls_back_to_text(adapter: str) -> None:
    with LLMTestServer(refuse=("json_schema", "json_object")) as server:
        backend = make_test_backend(adapter, server.base_url)
        run(_once(backend))  # type: ignore[arg-type]
        run(_once(backend))  # type: ignore[arg-type]
        last = server.stats.bodies[-1]
    assert "response_format" not in last and "JSON schema" in last["messages"][0]["content"]
    assert server.stats.faults["refused"] == 2  # each refusal once, then never again
    assert backend.caps.structured == "text"  # type: ignore[attr-defined]


def test_a_pinned_mode_that_is_refused_stops_with_one_line_naming_field_and_setting() -> None:
    with LLMTestServer(refuse=("json_schema",)) as server:
        backend = make_test_backend("openai", server.base_url, structured_output="json_schema")
        with pytest.raises(RefusedField) as caught:
            run(_once(backend))  # type: ignore[arg-type]
        assert server.stats.requests == 1  # a refusal is never retried
    message = str(caught.value)
    assert "\n" not in message and "'response_format'" in message
    assert "llm.structured_output" in message and caught.value.attempts == 1


def test_probe_learns_n_and_logprobs_and_the_project_remembers(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "p", LABELS)
    with LLMTestServer(refuse=("n", "logprobs")) as server:
        backend = make_test_backend("openai", server.base_url)
        line = ensure(backend, store)
        assert line is not None and "logprobs no" in line and "samples per call 1" in line
        assert "structured output json_schema" in line and "latency" in line
        first = server.stats.requests
        again = make_test_backend("openai", server.base_url)
        assert ensure(again, store) is not None and server.stats.requests == first  # no probe
        assert again.caps == backend.caps  # type: ignore[attr-defined]
        assert not again.supports_logprobs
    store.close()


def test_a_server_that_ignores_n_is_asked_one_sample_per_call(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "p", LABELS)
    with LLMTestServer(ignore_n=True, logprobs=False) as server:
        backend = make_test_backend("openai", server.base_url)
        ensure(backend, store)
        assert backend.caps == Capabilities(  # type: ignore[attr-defined]
            "json_schema", False, False, backend.caps.latency_s, True  # type: ignore[attr-defined]
        )
        server.reset()
        labeller = Labeller(backend, LABELS, LLMConfig(samples=3), None)
        assert labeller.method == "consistency"  # self-consistency where logprobs are missing
        text = "where is my parcel"
        [decision] = labeller.label_items_sync([Item(1, "a", text, text_hash(text))])
        assert decision.label == "billing" and decision.confidence == 1.0
        assert server.stats.requests == 3 and all("n" not in b for b in server.stats.bodies)
    store.close()


def test_labeller_on_a_server_refusing_everything_still_labels_every_item() -> None:
    with LLMTestServer(refuse=("json_schema", "json_object", "n", "logprobs")) as server:
        backend = make_test_backend("openai", server.base_url)
        labeller = Labeller(backend, LABELS, LLMConfig(samples=1), None)
        items = [Item(i, str(i), f"text {i}", text_hash(f"text {i}")) for i in range(6)]
        decisions = labeller.label_items_sync(items)
    assert [d.label for d in decisions] == ["billing"] * 6
    assert server.stats.faults["refused"] <= 3  # one per refused feature, not one per item


def test_concurrency_stays_low_against_a_server_that_answers_one_call_at_a_time() -> None:
    with LLMTestServer(serial=True, latency_s=0.1) as server:
        backend = make_test_backend("openai", server.base_url, concurrency=16, timeout_s=10.0)

        async def many() -> None:
            try:
                await asyncio.gather(*(backend.complete(ASK) for _ in range(16)))
            finally:
                await backend.aclose()

        run(many())
        assert server.stats.requests == 16 and server.stats.max_in_flight <= 3
    assert backend.guard.limit.peak <= 3  # type: ignore[attr-defined]


def test_concurrency_rises_while_latency_holds() -> None:
    with LLMTestServer(latency_s=0.05) as server:
        backend = make_test_backend("openai", server.base_url, concurrency=8, timeout_s=5.0)

        async def many() -> None:
            try:
                await asyncio.gather(*(backend.complete(ASK) for _ in range(60)))
            finally:
                await backend.aclose()

        run(many())
        assert server.stats.max_in_flight >= 4
    assert backend.guard.limit.peak >= 4  # type: ignore[attr-defined]


def test_overload_halves_the_limit_and_a_fixed_limit_never_moves() -> None:
    adaptive = ConcurrencyLimit(16, adaptive=True)
    for _ in range(9):
        adaptive.succeeded(0.1, busy=adaptive.limit)
    assert adaptive.limit == 10
    for _ in range(4):
        adaptive.succeeded(0.5, busy=adaptive.limit)  # calls only queue: step back
    assert adaptive.limit < 10
    before = adaptive.limit
    adaptive.overloaded()
    assert adaptive.limit == before // 2
    fixed = ConcurrencyLimit(16)
    fixed.overloaded()
    assert fixed.limit == 16


def test_a_hosted_endpoint_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    backend = OpenAIBackend(TEST_MODEL, retry=FAST_RETRY)
    line = ensure(backend, None)
    assert line is not None and "as documented" in line and "json_schema" in line


def test_a_run_learns_from_the_first_refusal_says_so_and_the_rerun_remembers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agent.app.cli import app

    def invoke(*args: object) -> str:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    corpus = tmp_path / "corpus.csv"
    rows = [f"m{i},message number {i} about a parcel" for i in range(12)]
    corpus.write_text("id,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "labels.txt").write_text("\n".join(LABELS.names) + "\n", encoding="utf-8")
    project = tmp_path / "project"
    invoke("init", project, "--labels", tmp_path / "labels.txt", "--embedding-model", "hashing")
    invoke("import", project, corpus, "--id-col", "id")
    with LLMTestServer(refuse=("json_schema",)) as server:
        run_args = ("run", project, "--llm", "openai/test-model", "--api-base", server.base_url,
                    "--rounds", "1", "--batch-size", "6")  # fmt: skip
        first = invoke(*run_args)
        assert "not known yet" in first and "structured output json_object" in first
        assert "(learnt)" in first and server.stats.faults["refused"] == 1  # refused once
        second = invoke(*run_args[:-1], "4", "--fresh")
        assert "structured output json_object" in second and "remembered" in second
        assert server.stats.faults["refused"] == 1  # never asked again
