"""Prices: people's and the LLM's dollars in `status`, and a job that stops paying for LLM
calls once an answer's audited worth, at a person's price, is below what a call costs. Over
real HTTP against the test server, priced as gpt-4o-mini from litellm's cost map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_fixtures import make_test_backend

from agent import JobLimits, LabelingSession, ProjectConfig, run_job
from agent.app.io import load_label_set
from agent.app.status import project_status
from agent.config import LLMConfig, RoutingConfig
from agent.labeller.labeller import Labeller
from agent.llm.item_markup import find_items
from agent.llm.test_server import LLMTestServer
from agent.routing.trust import LLMTrust
from agent.types import Item, QueueEntry
from tests.test_trust import _trec

PRICED_MODEL = "openai/gpt-4o-mini"  # in litellm's cost map; the server answers any name
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic chatter


def test_an_answer_pays_for_a_call_when_its_worth_at_a_persons_price_covers_it() -> None:
    strong = LLMTrust(60, 54, 40, n_classes=2)  # 90 %: worth about 0.62 of a certain label
    assert strong.pays_for_a_call(0.10, 0.001)  # worth $0.06 against $0.001
    assert not strong.pays_for_a_call(0.001, 0.001)  # worth $0.0006 against $0.001
    assert strong.pays_for_a_call(None, 0.5) and strong.pays_for_a_call(0.001, 0.0)


def _gold_policy(gold: dict[str, str]) -> Any:
    def policy(body: dict[str, Any]) -> str:
        entries = [{"n": n, "label": gold[text], "confidence": 0.9, "rationale": "gold"}
                   for n, text in find_items(body["messages"])]  # fmt: skip
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        if len(entries) > 1 or "items" in ((schema or {}).get("properties") or {}):
            return json.dumps({"items": entries})
        entries[0].pop("n")
        return json.dumps(entries[0])

    return policy


def _priced_job(datasets: Path, server: LLMTestServer, person_usd: float) -> LabelingSession:
    texts, gold = _trec(datasets, 400)
    gold_by_text = dict(zip(texts, gold))
    server.policy = _gold_policy(gold_by_text)
    label_set = load_label_set(datasets / "trec" / "labels.json")
    config = ProjectConfig(
        embedding_model="hashing", batch_size=400, seed=1,
        llm=LLMConfig(model=PRICED_MODEL, few_shot_k=0, samples=1),
        routing=RoutingConfig(trust_audits=10, llm_probe=40, human_label_usd=person_usd),
    )  # fmt: skip
    session = LabelingSession.from_texts(texts, label_set, config=config)
    session.backend = make_test_backend("openai", server.base_url, model=PRICED_MODEL)
    labeller = Labeller(session.backend, label_set, config.llm, session.store)

    def oracle(item: Item, entry: QueueEntry) -> str:
        return gold_by_text[item.text]

    run_job(session, JobLimits(rounds=5, batch_size=400, human_budget=80, human_per_round=20),
            labeller, oracle)  # fmt: skip
    return session


def test_a_job_stops_calling_an_llm_whose_answers_cost_more_than_they_are_worth(
    datasets: Path, llm_server: LLMTestServer
) -> None:
    """The same right LLM, asked about the whole pool when a person's label costs $1, and only
    probed when it costs a millionth of a cent, below any call's price; status says why and
    shows both spends."""
    dear = _priced_job(datasets, llm_server, person_usd=1.0)
    dear_calls = int(dear.store.cache_totals()["calls"])
    cheap = _priced_job(datasets, llm_server, person_usd=1e-8)
    cheap_calls = int(cheap.store.cache_totals()["calls"])
    assert dear_calls >= 380 and cheap_calls <= 120, (dear_calls, cheap_calls)
    note = cheap.store.get_meta("llm_trust")["note"]
    assert "a call costs $" in note and note.endswith("relying on the classifier"), note
    spend = project_status(cheap.store, cheap.config.routing)["spend"]
    assert spend["llm_calls"] == cheap_calls and spend["llm_usd"] > 0
    assert spend["human_labels"] > 0
    assert spend["human_usd"] == pytest.approx(spend["human_labels"] * 1e-8, abs=1e-4)
