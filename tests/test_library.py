"""The library as a pipeline uses it: the session's own LLM (over real HTTP to the local test
server), results keyed by the user's ids, predictions as names, str paths, and the warnings
when a configured LLM is not used."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent import (
    COLUMNS,
    JobLimits,
    LabelingSession,
    LLMConfig,
    ProjectConfig,
    export,
    run_job,
)
from agent.labeller.labeller import Labeller
from agent.llm.factory import make_backend
from agent.llm.protocol import ChatBackend
from agent.llm.test_server import LLMTestServer
from agent.store.sqlite import Store
from agent.types import LabelSet

LABELS = ("card_arrival", "pin", "refund")
WORDS = {
    "card_arrival": ["my card never arrived", "card still not delivered", "where is my new card"],
    "pin": ["how do I reset my PIN", "my pin is blocked", "forgot the pin code"],
    "refund": ["refund still missing", "I want my money back", "refund not received yet"],
}


def corpus(n_each: int = 8) -> tuple[list[str], list[str], list[str]]:
    """Texts, their gold labels and ids ("t0", "t1", ...), labels interleaved."""
    texts, gold = [], []
    for k in range(n_each):
        for label, phrases in WORDS.items():
            texts.append(f"{phrases[k % len(phrases)]} (case {k})")
            gold.append(label)
    return texts, gold, [f"t{i}" for i in range(len(texts))]


def llm_config(server: LLMTestServer, model: str | None = "openai/test-model") -> LLMConfig:
    return LLMConfig(model=model, api_base=server.base_url, few_shot_k=0, max_retries=0)


def session_with(**kwargs: Any) -> LabelingSession:
    texts, _, ids = corpus()
    config = kwargs.pop("config", None) or ProjectConfig(embedding_model="hashing", batch_size=12)
    return LabelingSession.from_texts(texts, LABELS, ids=ids, config=config, **kwargs)


# ---- the session's LLM ---------------------------------------------------------------------
def test_job_asks_the_llm_of_the_config(llm_server: LLMTestServer) -> None:
    config = ProjectConfig(embedding_model="hashing", llm=llm_config(llm_server))
    session = session_with(config=config)
    report = run_job(session, JobLimits(rounds=1, batch_size=12))
    assert llm_server.stats.requests > 0 and report.llm_calls > 0
    asked = [r for r in session.results() if r["llm_label"] is not None]
    assert len(asked) == report.llm_calls
    assert all(r["llm_label"] in LABELS for r in asked)


def test_llm_argument_model_name_backend_and_none(
    llm_server: LLMTestServer, llm_backend: Any
) -> None:
    base = ProjectConfig(embedding_model="hashing", llm=llm_config(llm_server, model=None))
    by_name = session_with(config=base, llm="openai/test-model")
    assert by_name.config.llm.model == "openai/test-model"
    assert run_job(by_name, JobLimits(rounds=1, batch_size=6)).llm_calls > 0
    backend: ChatBackend = llm_backend("openai")
    given = session_with(llm=backend)
    assert given.backend is backend
    before = llm_server.stats.requests
    run_job(given, JobLimits(rounds=1, batch_size=6))
    assert llm_server.stats.requests > before
    switched_off = session_with(config=base.model_copy(update={"llm": llm_config(llm_server)}),
                                llm="none")
    before = llm_server.stats.requests
    assert run_job(switched_off, JobLimits(rounds=1, batch_size=6)).llm_calls == 0
    assert llm_server.stats.requests == before and switched_off.backend is None


# ---- warnings ------------------------------------------------------------------------------
def test_query_and_results_warn_once_when_the_configured_llm_is_unused(
    llm_server: LLMTestServer,
) -> None:
    config = ProjectConfig(embedding_model="hashing", llm=llm_config(llm_server))
    session = session_with(config=config)
    with pytest.warns(UserWarning, match=r"query\(\) .*openai/test-model") as caught:
        session.query(3)
        session.query(3)
    assert sum("query()" in str(w.message) for w in caught) == 1
    with pytest.warns(UserWarning, match=r"results\(\) answers without the LLM"):
        session.results()
    run_job(session, JobLimits(rounds=1, batch_size=6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the LLM has labelled items now: nothing to say
        session.predictions()
    assert llm_server.stats.requests > 0


def test_no_llm_no_warning() -> None:
    session = session_with()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session.query(3)
        session.results()
        session.predictions()


def test_labeller_without_backend_on_the_state_warns(llm_server: LLMTestServer) -> None:
    config = ProjectConfig(embedding_model="hashing", llm=llm_config(llm_server))
    session = session_with(config=config, llm="none")
    labeller = Labeller(make_backend(config.llm), session.label_set, config.llm, session.store)
    with pytest.warns(UserWarning, match="no LLM backend"):
        run_job(session, JobLimits(rounds=1, batch_size=6), labeller)


# ---- results and predictions ---------------------------------------------------------------
def test_results_keyed_by_ids_with_names_and_best_guesses() -> None:
    texts, gold, ids = corpus()
    session = session_with()
    session.submit({ids[0]: gold[0], ids[1]: gold[1], ids[2]: None})  # t2: no label fits
    session.retrain()
    rows = session.results()
    assert [r["id"] for r in rows] == ids and [r["text"] for r in rows] == texts
    assert all(list(r) == COLUMNS for r in rows)
    assert rows[0]["final_label"] == gold[0] and rows[0]["label_status"] == "human"
    assert rows[2]["label_status"] == "none" and rows[2]["final_label"] is None
    rest = rows[3:]  # never queued, no job: the session's best guess, by name
    assert {r["label_status"] for r in rest} == {"suggested"}
    assert all(r["final_label"] in LABELS and 0 < r["final_confidence"] <= 1 for r in rest)
    assert all(r["queue_reason"] is None for r in rest)
    names = session.label_set.names
    assert [r["final_label"] for r in rest] == [names[g] for g in session.best_guess()[3:]]
    labels, confidence = session.predictions()
    assert labels.dtype == object and list(labels) == [r["final_label"] for r in rows]
    assert labels[2] is None and np.isnan(confidence[2]) and confidence[0] == 1.0


def test_results_are_the_export_rows_after_a_job(tmp_path: Path) -> None:
    texts, gold, _ = corpus()
    session = session_with()
    answers = dict(zip(texts, gold))
    run_job(session, JobLimits(rounds=2, batch_size=6, human_budget=8),
            oracle=lambda item, entry: answers[item.text])
    out = tmp_path / "labels.jsonl"
    export(session.store, str(out))  # a str path, as a pipeline passes it
    with out.open(encoding="utf-8") as handle:
        exported = [json.loads(line) for line in handle]
    assert exported == session.results()
    assert {r["label_status"] for r in exported} <= {"human", "auto", "suggested"}


def test_open_takes_a_str_folder(tmp_path: Path) -> None:
    texts, _, ids = corpus(2)
    with Store.create(tmp_path / "proj", LabelSet(LABELS)) as store:
        store.add_items(zip(ids, texts, [None] * len(texts)), source_file="<test>")
    session = LabelingSession.open(str(tmp_path / "proj"),
                                   config=ProjectConfig(embedding_model="hashing"))
    try:
        assert [r["id"] for r in session.results()] == ids
    finally:
        session.close()


class NoEmbedder:
    """An embedder that must not be used: reading finished results needs no vectors."""

    name, dim = "none", 8

    def encode(self, texts: Any, batch_size: int = 64) -> np.ndarray:
        raise AssertionError("results() embedded texts although every item had an answer")


def test_results_after_a_job_read_the_store_only(tmp_path: Path) -> None:
    texts, gold, ids = corpus(3)
    folder = tmp_path / "proj"
    with Store.create(folder, LabelSet(LABELS)) as store:
        store.add_items(zip(ids, texts, [None] * len(texts)), source_file="<test>")
    config = ProjectConfig(embedding_model="hashing", batch_size=4)
    session = LabelingSession.open(folder, config=config)
    answers = dict(zip(texts, gold))
    run_job(session, JobLimits(rounds=1, batch_size=4, human_budget=3),
            oracle=lambda item, entry: answers[item.text])
    before = session.results()
    session.close()
    reopened = LabelingSession.open(folder, config=config, embedder=NoEmbedder())
    try:
        assert reopened.results() == before
    finally:
        reopened.close()
