"""Long texts: cut for the prompt with a visible marker (stable cache keys, counted in the
estimate), and a provider's context-length 400 fails that one item while the run goes on.

Over real HTTP: Labeller -> OpenAIBackend / LiteLLMBackend -> the OpenAI-compatible test
server, which answers 400 `context_length_exceeded` to prompts over `knobs.context_chars`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_fixtures import ADAPTERS, make_test_backend
from test_labeller_http import GOLD, LABELS, gold_policy

from agent.config import LLMConfig
from agent.errors import ContextLengthError
from agent.labeller.budget import estimate_cost
from agent.labeller.labeller import Labeller
from agent.llm.item_markup import cut_length, cut_text, find_items
from agent.llm.litellm_backend import classify_litellm_error
from agent.llm.pricing import import_litellm
from agent.llm.protocol import ChatRequest
from agent.llm.resilience import failure_for_status
from agent.llm.test_server import LLMTestServer
from agent.store.sqlite import Store
from agent.types import Item, text_hash

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic chatter
SHORT = list(GOLD)[:3]
FIVE_MB = "my parcel never came. " * 240_000  # 5,280,000 characters


def make_items(texts: list[str]) -> list[Item]:
    return [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(texts)]


@pytest.fixture
def server(llm_server: LLMTestServer) -> LLMTestServer:
    llm_server.policy = gold_policy
    return llm_server


# ---- the cut --------------------------------------------------------------------------------
def test_a_long_text_is_cut_with_a_marker_and_the_same_way_every_time() -> None:
    assert cut_text("short", 100) == "short" and cut_text("x" * 100, 100) == "x" * 100
    cut = cut_text("a" * 123_556, 100)
    assert cut == "a" * 100 + " … [cut: 123,456 more characters]"
    assert cut_text("a" * 123_556, 100) == cut and len(cut) == cut_length(123_556, 100)
    assert cut_text("y" * 5000, None) == "y" * 5000 and cut_length(5000, None) == 5000
    assert LLMConfig().max_text_chars == 4000


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_5_mb_text_never_goes_whole_and_its_answer_is_cached_under_a_stable_key(
    server: LLMTestServer, tmp_path: Path, adapter: str
) -> None:
    cfg = LLMConfig(samples=1)
    texts = [*SHORT, FIVE_MB]
    with Store.create(tmp_path, LABELS) as store:
        labeller = Labeller(make_test_backend(adapter, server.base_url), LABELS, cfg, store)
        decisions = labeller.label_items_sync(make_items(texts))
        assert len(decisions) == 4 and labeller.stats.cut_texts == 1
        sizes = [len(json.dumps(body)) for body in server.stats.bodies]
        assert server.stats.requests == 4 and max(sizes) < 4000 + 5000
        (sent,) = [
            text
            for b in server.stats.bodies
            for _, text in find_items(b["messages"])
            if "[cut:" in text
        ]
        assert sent.endswith("… [cut: 5,276,000 more characters]")
        assert sent == cut_text(FIVE_MB, cfg.max_text_chars)
    with Store.open(tmp_path) as store:
        again = Labeller(make_test_backend(adapter, server.base_url), LABELS, cfg, store)
        assert [d.label for d in again.label_items_sync(make_items(texts))] == [
            d.label for d in decisions
        ]
    assert server.stats.requests == 4 and again.stats.cache_hits == 4  # nothing asked twice


def test_few_shot_examples_are_cut_too(server: LLMTestServer) -> None:
    cfg = LLMConfig(samples=1, max_text_chars=200)
    labeller = Labeller(make_test_backend("openai", server.base_url), LABELS, cfg, None)
    labeller.label_items_sync(make_items(SHORT[:1]), [[("z" * 10_000, "billing")]])
    prompt = server.stats.bodies[0]["messages"][-1]["content"]
    assert "z" * 201 not in prompt and "[cut: 9,800 more characters]" in prompt


# ---- the provider says the prompt is too long ------------------------------------------------
def test_context_length_errors_are_classified_as_such_and_not_retried() -> None:
    message = "This model's maximum context length is 8192 tokens. However, your messages ..."
    assert failure_for_status(400, message, None).kind == "context_length"
    assert failure_for_status(400, "bad", None, "context_length_exceeded").kind == "context_length"
    assert failure_for_status(413, "Request Entity Too Large", None).kind == "context_length"
    assert (
        failure_for_status(400, "prompt is too long: 210000 tokens > 200000", None).retryable
        is False
    )
    assert failure_for_status(400, "unknown parameter", None).kind == "client"
    litellm = import_litellm()
    error = litellm.ContextWindowExceededError("too long", model="m", llm_provider="openai")
    failure = classify_litellm_error(error)
    assert failure is not None and failure.kind == "context_length" and not failure.retryable


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_both_adapters_raise_context_length_error_after_one_attempt(
    server: LLMTestServer, adapter: str
) -> None:
    import asyncio

    server.knobs.context_chars = 50
    backend = make_test_backend(adapter, server.base_url)
    request = ChatRequest(messages=[{"role": "user", "content": "x" * 100}])
    with pytest.raises(ContextLengthError, match="maximum context length"):
        asyncio.run(backend.complete(request))
    assert server.stats.requests == 1


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_context_length_400_fails_that_item_alone_and_the_run_goes_on(
    server: LLMTestServer, tmp_path: Path, adapter: str
) -> None:
    server.knobs.context_chars = 6000  # the long text fits max_text_chars, not the context
    cfg = LLMConfig(samples=1, max_text_chars=20_000, concurrency=2)
    texts = [SHORT[0], "x" * 10_000, SHORT[1], SHORT[2]]
    with Store.create(tmp_path, LABELS) as store:
        labeller = Labeller(make_test_backend(adapter, server.base_url), LABELS, cfg, store)
        decisions = labeller.label_items_sync(make_items(texts))
        assert [d.label for d in decisions] == [
            GOLD[SHORT[0]],
            None,
            GOLD[SHORT[1]],
            GOLD[SHORT[2]],
        ]
        failed = decisions[1]
        assert "too long" in failed.rationale and "context" in failed.usage["error"]
        assert failed.confidence == 0.0 and failed.confidence_method == "none"
        assert labeller.stats.too_long == 1 == labeller.stats.failures
        assert server.stats.requests == 4 and labeller.stats.calls == 3  # no retry, not paid
        assert store.cache_totals()["calls"] == 3  # the failure is not cached as an answer
    with Store.open(tmp_path) as store:
        Labeller(make_test_backend(adapter, server.base_url), LABELS, cfg, store).label_items_sync(
            make_items(texts)
        )
    assert server.stats.requests == 5  # only the failed item is asked again


def test_in_a_multi_item_call_only_the_long_item_fails(server: LLMTestServer) -> None:
    server.knobs.context_chars = 6000
    cfg = LLMConfig(samples=1, max_text_chars=20_000, items_per_call=4)
    texts = [SHORT[0], "x" * 10_000, SHORT[1], SHORT[2]]
    labeller = Labeller(make_test_backend("openai", server.base_url), LABELS, cfg, None)
    decisions = labeller.label_items_sync(make_items(texts))
    assert [d.label for d in decisions] == [GOLD[SHORT[0]], None, GOLD[SHORT[1]], GOLD[SHORT[2]]]
    assert server.stats.requests == 1 + 4 and labeller.stats.too_long == 1


def test_a_request_of_only_too_long_items_raises_nothing(server: LLMTestServer) -> None:
    server.knobs.context_chars = 3000
    cfg = LLMConfig(samples=1)
    labeller = Labeller(make_test_backend("openai", server.base_url), LABELS, cfg, None)
    decisions = labeller.label_items_sync(make_items(["y" * 3900, "z" * 3950]))
    assert [d.label for d in decisions] == [None, None] and labeller.stats.too_long == 2


# ---- the estimate counts what the prompt holds -------------------------------------------------
def test_the_estimate_counts_cut_texts() -> None:
    cfg = LLMConfig(few_shot_k=0)
    lengths = [200] * 99 + [5_000_000]
    model = "openai/gpt-4o-mini"
    est = estimate_cost(model, LABELS, 100, sum(lengths) / 100, cfg, text_lengths=lengths)
    plain = estimate_cost(model, LABELS, 100, 200.0, cfg, text_lengths=[200] * 100)
    assert est["cut_texts"] == 1 and plain["cut_texts"] == 0 and est["max_text_chars"] == 4000
    assert "1 texts over 4,000 characters cut" in est["note"]
    extra = est["prompt_tokens"] - plain["prompt_tokens"]
    assert 0 < extra < 100 * 4100 / 3  # about one cut text's worth, not 5 MB
    capped = estimate_cost(model, LABELS, 100, 50_000.0, cfg)
    assert capped["cut_texts"] is None and capped["prompt_tokens"] < 100 * 4100 / 2
    half = estimate_cost(model, LABELS, 200, 0.0, cfg, text_lengths=lengths)
    assert half["cut_texts"] == 2  # scaled to the items asked about


def test_the_evaluation_annotators_recognise_a_cut_text() -> None:
    from agent.llm.annotators import SimulatedLLM

    long_text = "the parcel is late and " * 40
    gold = {long_text: "shipping", "short one": "billing"}
    backend = SimulatedLLM(LABELS, gold, accuracy=1.0)
    cfg = LLMConfig(samples=1, max_text_chars=120)
    labeller = Labeller(backend, LABELS, cfg, None)
    decisions = labeller.label_items_sync(make_items([long_text, "short one", "x" * 300]))
    assert [d.label for d in decisions] == ["shipping", "billing", None]
    assert labeller.stats.cut_texts == 2


# ---- a whole run -----------------------------------------------------------------------------
def test_a_run_with_a_long_text_and_a_small_context_goes_on(
    server: LLMTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agent.app.cli import app

    def invoke(*args: object) -> None:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    corpus = tmp_path / "corpus.csv"
    big_text = FIVE_MB[:220_000]  # the whole 5 MB would only slow the hashing embedder down
    rows = [f"m{i},{text}" for i, text in enumerate(GOLD)] + [f"big,{big_text}"]
    corpus.write_text("id,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "labels.txt").write_text("\n".join(LABELS.names) + "\n", encoding="utf-8")
    project = tmp_path / "project"
    invoke("init", project, "--labels", tmp_path / "labels.txt", "--embedding-model", "hashing")
    invoke("import", project, corpus, "--id-col", "id")
    server.knobs.context_chars = 3000  # the cut text (4,000 characters) still does not fit
    invoke("run", project, "--llm", "openai/test-model", "--api-base", server.base_url,
           "--rounds", "1", "--batch-size", "30")  # fmt: skip
    assert max(len(json.dumps(body)) for body in server.stats.bodies) < 10_000
    with Store.open(project) as store:
        votes = {v["item_key"]: v for v in store.annotations(source="llm", kind="vote")}
        big = next(it.key for batch in store.iter_items() for it in batch if it.id == "big")
    assert len(votes) == len(GOLD) + 1  # every item asked once; the long one failed alone
    assert votes[big]["label"] is None and "too long" in votes[big]["rationale"]
    assert sum(v["label"] is not None for v in votes.values()) == len(GOLD)
    status = CliRunner().invoke(app, ["status", str(project), "--json"])
    assert json.loads(status.output)["long_texts"] == {"over_chars": 4000, "items": 1}
    shown = CliRunner().invoke(app, ["status", str(project)]).output
    assert "1 cut to 4,000 characters" in shown
