"""Settings for endpoints where every written token costs time: answers without a rationale
from endpoints on this machine (`llm.rationale: auto`) and no log-probabilities at all
(`llm.logprobs: never`), over real HTTP against the test server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_fixtures import make_test_backend

from agent.config import LLMConfig
from agent.labeller.answers import asks_rationale
from agent.labeller.labeller import Labeller
from agent.labeller.prompts import PromptSet
from agent.llm.capabilities import Capabilities, ensure, meta_key
from agent.llm.factory import make_backend
from agent.llm.item_markup import find_items
from agent.llm.test_server import LLMTestServer
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, text_hash

LABELS = LabelSet(("billing", "shipping"), ("money", "parcels"))
TEXTS = ["my card was charged twice", "where is my parcel"]
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic chatter


@pytest.mark.parametrize(
    ("setting", "api_base", "asked"),
    [
        ("auto", "http://127.0.0.1:8765/v1", False),
        ("auto", "http://localhost:11434/v1", False),
        ("auto", "http://[::1]:8000/v1", False),
        ("auto", "https://api.openai.com/v1", True),
        ("auto", "http://10.0.0.5:8000/v1", True),  # another machine's server: not ours to spare
        ("auto", None, True),  # a hosted provider
        ("always", "http://127.0.0.1:8765/v1", True),
        ("never", "https://api.openai.com/v1", False),
    ],
)
def test_the_rationale_is_asked_from_remote_endpoints_only_unless_set(
    setting: str, api_base: str | None, asked: bool
) -> None:
    assert asks_rationale(LLMConfig(rationale=setting, api_base=api_base)) is asked


def test_without_a_rationale_both_answer_formats_drop_it() -> None:
    prompts = PromptSet.load()
    for texts in (TEXTS[:1], TEXTS):
        with_it = prompts.user_message(texts, [])
        without = prompts.user_message(texts, [], rationale=False)
        assert '"rationale"' in with_it and '"rationale"' not in without
        assert '"confidence": <0 to 1>' in without


def grammar_policy(seen: list[dict[str, Any]]) -> Any:
    """A server that writes exactly the fields the schema asks for, as llama.cpp's grammar
    does, and records each request body."""

    def policy(body: dict[str, Any]) -> str:
        seen.append(body)
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        answer = {"label": "billing", "confidence": 0.8, "rationale": "a charge is billing"}
        fields = (schema or {}).get("properties", answer)
        return json.dumps({k: v for k, v in answer.items() if k in fields})

    return policy


@pytest.mark.parametrize(
    ("setting", "rationale"), [("auto", ""), ("always", "a charge is billing")]
)
def test_a_local_endpoint_is_asked_for_label_and_confidence_alone_unless_set(
    llm_server: LLMTestServer, tmp_path: Path, setting: str, rationale: str
) -> None:
    seen: list[dict[str, Any]] = []
    llm_server.policy = grammar_policy(seen)
    backend = make_test_backend("openai", llm_server.base_url)
    cfg = LLMConfig(samples=1, few_shot_k=0, rationale=setting, api_base=llm_server.base_url)
    items = [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(TEXTS)]
    with Store.create(tmp_path, LABELS) as store:
        decisions = Labeller(backend, LABELS, cfg, store).label_items_sync(items)
    assert [d.label for d in decisions] == ["billing", "billing"]
    assert [d.rationale for d in decisions] == [rationale, rationale]
    schema = seen[0]["response_format"]["json_schema"]["schema"]
    assert ("rationale" in schema["properties"]) is bool(rationale)
    user = seen[0]["messages"][-1]["content"]
    assert ('"rationale"' in user) is bool(rationale)
    assert [text for _, text in find_items(seen[0]["messages"])] == TEXTS[:1]


def test_logprobs_never_asks_for_none_even_where_the_endpoint_was_remembered_with_them(
    llm_server: LLMTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    seen: list[dict[str, Any]] = []
    llm_server.policy = grammar_policy(seen)
    cfg = LLMConfig(
        model="openai/test-model", api_base=llm_server.base_url, samples=1, few_shot_k=0,
        logprobs="never", max_retries=0,
    )
    items = [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(TEXTS)]
    with Store.create(tmp_path, LABELS) as store:
        backend = make_backend(cfg)
        store.set_meta(meta_key(backend), Capabilities(logprobs=True, probed=True).to_json())
        line = ensure(backend, store)
        assert line is not None and "logprobs no" in line and not backend.supports_logprobs
        decisions = Labeller(backend, LABELS, cfg, store).label_items_sync(items)
    assert [d.confidence_method for d in decisions] == ["stated", "stated"]
    assert [d.confidence for d in decisions] == [0.8, 0.8]
    assert seen and not any(body.get("logprobs") for body in seen)
    assert all(body.get("n", 1) == 1 for body in seen)  # one answer per item, one call
