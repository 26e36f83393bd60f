"""`labelagent run` on a multi-label project (issue 21), through the CLI on a real on-disk
project of go_emotions rows, the LLM over real HTTP (the OpenAI-compatible test server): how
the LLM's per-label scores were read is kept with each answer and told by `status`;
`--llm-budget` stops asking the LLM after N paid calls; a rerun finishes an interrupted run
and `--fresh` starts anew."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from llm_fixtures import make_test_backend

from agent.config import LLMConfig, ProjectConfig
from agent.llm.item_markup import find_items
from agent.llm.test_server import LLMTestServer
from agent.loop.multi_job import MultiLimits, run_multi_job
from agent.store.sqlite import Store
from agent.types import LabelSet, encode_label_set
from tests.test_multi_learning import go_project, invoke


def test_status_says_how_the_llm_scores_were_read(tmp_path: Path) -> None:
    project, gold = go_project(tmp_path, 60)
    code, out = invoke("run", project, "--llm", "simulated:acc=0.8", "--oracle-file", gold,
                       "--rounds", "1", "--batch-size", "20")  # fmt: skip
    assert code == 0, out
    with Store.open(project) as store:
        votes = store.latest_votes("llm")
    assert len(votes) == 20
    assert {json.loads(v["meta"])["confidence_method"] for v in votes.values()} == {"logprob"}
    code, out = invoke("status", project)
    assert code == 0 and "LLM scores per label from token log-probabilities (20 items)" in out
    code, out = invoke("status", project, "--json")
    assert json.loads(out)["llm_confidence"] == {"logprob": 20}


def gold_sets(gold: Path, data: Path) -> dict[str, list[str]]:
    """Item text -> its gold label names, from the project's two files."""
    with data.open(encoding="utf-8", newline="") as d, gold.open(encoding="utf-8", newline="") as g:
        texts = {r["id"]: r["text"] for r in csv.DictReader(d)}
        return {texts[r["id"]]: r["labels"].split("|") for r in csv.DictReader(g)}


def set_policy(sets: dict[str, list[str]]) -> Any:
    """A test-server policy answering each item's gold set."""

    def policy(body: dict[str, Any]) -> str:
        (_, text), *_ = find_items(body["messages"])
        names = sets.get(text, ["neutral"])
        return json.dumps({"labels": [{"label": n, "confidence": 0.9} for n in names],
                           "considered": [], "abstain": False, "rationale": "gold"})  # fmt: skip

    return policy


def test_llm_budget_stops_asking_the_llm_after_n_paid_calls_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--llm-budget 25 with rounds of 20 over HTTP: 20 items asked, then the 5 calls left (the
    round line counts its own calls), then none; the round line and the summary say so.
    Budgets are the project's: a second run with the same budget pays for nothing more."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    project, gold = go_project(tmp_path, 80)
    with LLMTestServer(policy=set_policy(gold_sets(gold, tmp_path / "data.csv"))) as server:
        run = ("run", project, "--llm", "openai/test-model", "--api-base", server.base_url,
               "--oracle-file", gold, "--rounds", "3", "--batch-size", "20",
               "--llm-budget", "25")  # fmt: skip
        code, out = invoke(*run)
        assert code == 0, out
        assert server.stats.requests == 25
        text = " ".join(out.split())
        assert "round 2: selected 5," in text and "LLM calls 5; LLM budget of 25 calls reached" \
            in text  # fmt: skip
        assert "round 3: selected 20," in text  # the rounds go on without the LLM
        assert "LLM in this run: 25 paid calls, 0 cache hits; LLM budget of 25 calls reached" \
            in text  # fmt: skip
        code, again = invoke(*run)
        assert code == 0 and server.stats.requests == 25 and "LLM in this run: 0 paid" in again
    with Store.open(project) as store:
        assert store.cache_totals()["calls"] == 25


@pytest.mark.parametrize(("ignore_n", "calls", "selected"), [(False, 10, [3, 7]),
                                                              (True, 9, [3, 10])])
def test_samples_are_paid_calls_of_the_budget(
    tmp_path: Path, ignore_n: bool, calls: int, selected: list[int]
) -> None:
    """Without logprobs an item takes llm.samples samples. A budget of 10 with 3 samples: the
    first round asks about 3 items (at most 9 calls); where the server takes `n` they took one
    call each, so the next round asks about the 7 the budget has left; where it does not, each
    took 3 calls and the next round goes on without the LLM."""
    from agent.embed import HashingEmbedder
    from agent.loop.session import LabelingSession

    labels = LabelSet(("anger", "joy", "sadness", "neutral"))
    texts = [f"comment number {i}" for i in range(30)]
    config = ProjectConfig(task="multi_label", llm=LLMConfig(samples=3))
    session = LabelingSession.from_texts(texts, labels, multi_label=True, config=config,
                                         embedder=HashingEmbedder())  # fmt: skip
    with LLMTestServer(policy=set_policy({}), ignore_n=ignore_n) as server:
        session.backend = make_test_backend("openai", server.base_url, supports_logprobs=False)
        report = session.run_sets(rounds=2, batch_size=10, llm_budget=10)
        assert server.stats.requests == calls
    assert report.llm_calls == calls and report.llm_budget_reached
    assert [r["selected"] for r in report.per_round] == selected
    note = report.per_round[-1]["llm_note"]
    assert note == "LLM budget of 10 calls reached: the LLM is not asked again"
    session.close()


def interrupted_run(project: Path, gold: Path, limits: MultiLimits) -> None:
    """A run of `limits` killed after its first round (as a Ctrl-C would stop it)."""
    from agent.loop.session import LabelingSession

    session = LabelingSession.open(project)
    with gold.open(encoding="utf-8", newline="") as handle:
        by_id = {r["id"]: r["labels"].split("|") for r in csv.DictReader(handle)}
    sets = {it.key: encode_label_set(by_id[it.id], session.label_set) for it in
            session.store.items()}  # fmt: skip

    def kill(kind: str, data: dict[str, Any]) -> None:
        if kind == "round":
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            run_multi_job(session, limits, None, lambda item: sets[item.key], kill)
    finally:
        session.close()


def test_a_rerun_finishes_the_interrupted_run_and_fresh_starts_anew(tmp_path: Path) -> None:
    """As single-label's `run`: a rerun with the same plan does only the rounds left, within
    the same human budget (people's answers in the killed run count); --fresh starts a new
    run of all its rounds."""
    flags = ("--llm", "none", "--rounds", "3", "--batch-size", "10", "--human-budget", "30")
    limits = MultiLimits(3, 10, 30)  # what those flags make
    for name, extra in (("resumed", ()), ("fresh", ("--fresh",))):
        (tmp_path / name).mkdir()
        project, gold = go_project(tmp_path / name, 80)
        interrupted_run(project, gold, limits)
        code, out = invoke("run", project, "--oracle-file", gold, *flags, *extra)
        assert code == 0, out
        rounds = re.findall(r"^round \d+:", out, re.M)
        with Store.open(project) as store:
            people = len(store.annotations(source="human"))
        if extra:
            assert "finishing" not in out and len(rounds) == 3
        else:
            assert "finishing the interrupted run: 1 of 3 rounds were done" in " ".join(
                out.split()) and len(rounds) == 2  # fmt: skip
            assert people <= 30, people  # the human budget held across the kill

