"""A call that fails after its retries fails its item, not the run; a dead endpoint stops the run
in one line; the next run asks the failed items again. Real HTTP (the stdlib test server on
127.0.0.1), a real SQLite store on disk, real litellm for the providers without `n`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from llm_fixtures import FAST_RETRY, make_test_backend

from agent.config import LLMConfig, ProjectConfig
from agent.errors import LabellingFailed
from agent.labeller.labeller import Labeller
from agent.labeller.outcomes import CALL_FAILED
from agent.llm.litellm_backend import LiteLLMBackend
from agent.llm.test_server import LLMTestServer
from agent.store.sqlite import Store
from agent.types import Annotation, Item, Kind, LabelSet, Source, text_hash

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic chatter
LABELS = LabelSet(("billing", "shipping", "tech"))
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "support"


def items(n: int) -> list[Item]:
    return [Item(i, str(i), f"text {i}", text_hash(f"text {i}")) for i in range(n)]


def answer_billing(body: dict[str, object]) -> str:
    return json.dumps({"label": "billing", "confidence": 0.8, "rationale": "r"})


# ---- the labeller -------------------------------------------------------------------------
def test_a_failed_call_fails_its_item_only_and_is_not_cached(tmp_path: Path) -> None:
    with LLMTestServer() as server, Store.create(tmp_path, LABELS) as store:
        server.script("ok", *["500"] * 4)  # the second call fails all 1 + 3 attempts
        cfg = LLMConfig(samples=1, concurrency=1)
        labeller = Labeller(make_test_backend("openai", server.base_url), LABELS, cfg, store)
        decisions = labeller.label_items_sync(items(3))
        assert [d.label for d in decisions] == ["billing", None, "billing"]
        assert decisions[1].confidence_method == CALL_FAILED
        assert "HTTP 500" in decisions[1].rationale
        assert labeller.stats.as_dict()["failed_items"] == 1
        assert store.cache_totals()["calls"] == 2  # the failure is not an answer
        again = Labeller(make_test_backend("openai", server.base_url), LABELS, cfg, store)
        before = server.stats.requests
        assert [d.label for d in again.label_items_sync(items(3))] == ["billing"] * 3
        assert server.stats.requests - before == 1  # only the failed item is asked again


def test_a_dead_endpoint_stops_after_a_streak_of_failed_calls() -> None:
    with LLMTestServer(api_key="the-right-key") as server:
        backend = make_test_backend("openai", server.base_url, api_key_env="LA_TEST_KEY")
        os.environ["LA_TEST_KEY"] = "a-wrong-key"
        try:
            cfg = LLMConfig(samples=1, concurrency=1, stop_after_failures=4)
            with pytest.raises(LabellingFailed) as info:
                Labeller(backend, LABELS, cfg, None).label_items_sync(items(40))
        finally:
            del os.environ["LA_TEST_KEY"]
        assert server.stats.requests == 4  # not the whole corpus against a dead endpoint
    line = str(info.value)
    assert "4 calls in a row" in line and "HTTP 401" in line and "LA_TEST_KEY" in line
    assert "\n" not in line and "a-wrong-key" not in line


def test_a_sample_call_that_fails_leaves_fewer_votes_not_a_failed_item() -> None:
    with LLMTestServer(ignore_n=True) as server:
        server.script("ok", "ok", *["500"] * 4)
        cfg = LLMConfig(samples=3, concurrency=1)
        backend = make_test_backend("openai", server.base_url, supports_logprobs=False)
        decision = Labeller(backend, LABELS, cfg, None).label_items_sync(items(1))[0]
    assert decision.label == "billing" and decision.confidence_method == "consistency"
    assert decision.usage["calls"] == 2  # two paid samples decide


# ---- the store ----------------------------------------------------------------------------
def test_failures_are_durable_and_end_when_a_vote_lands(tmp_path: Path) -> None:
    with Store.create(tmp_path, LABELS) as store:
        store.add_items([(str(i), f"text {i}", None) for i in range(3)])
        store.record_llm_failures({1: "HTTP 500", 2: "timeout"}, model="m", round_no=1)
    with Store.open(tmp_path) as store:
        assert store.count_failed_llm_items() == 2
        assert store.failed_llm_items() == {1: "HTTP 500", 2: "timeout"}
        assert store.failed_llm_items(before=0.0) == {}
        store.add_annotations([Annotation(1, "billing", Source.LLM, Kind.VOTE, actor="m")])
        assert store.failed_llm_items() == {2: "timeout"}
        store.record_llm_failures({1: "HTTP 503"}, model="m", round_no=2)  # failed again later
        assert store.count_failed_llm_items() == 2


# ---- the run ------------------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agent.app.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _project(tmp_path: Path, env: dict[str, str]) -> Path:
    project = tmp_path / "p"
    labels = str(EXAMPLES / "labels.json")
    _cli("init", str(project), "--labels", labels, "--embedding-model", "hashing", env=env)
    _cli("import", str(project), str(EXAMPLES / "messages.csv"), "--id-col", "id", env=env)
    config = ProjectConfig.load(project)
    config.llm.max_retries = 0  # a 500 fails its call at once
    config.save(project)
    return project


def _run(
    project: Path, server: LLMTestServer, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return _cli(
        "run", str(project), "--llm", "openai/test-model", "--api-base", server.base_url,
        "--rounds", "1", "--batch-size", "20", *extra, env=env,
    )  # fmt: skip


def test_a_run_goes_on_past_failed_calls_and_the_next_run_asks_them_again(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "HF_HUB_OFFLINE": "1"}
    project = _project(tmp_path, env)
    with LLMTestServer() as server:
        server.script("500", "500", "500")
        first = _run(project, server, env)
        assert first.returncode == 0, first.stderr
        with Store.open(project) as store:
            failed = store.failed_llm_items()
            assert len(failed) == 3 and store.count_failed_llm_items() == 3
            assert all("HTTP 500" in error for error in failed.values())
            assert store.cache_totals()["calls"] == 17
            votes = store.latest_votes(Source.LLM.value, list(failed))
            assert votes == {}  # a failed call is no vote
        status = _cli("status", str(project), env=env).stdout
        assert "3 items (the next run asks again)" in status
        assert f"labelagent run {project} asks them again" in status.replace("\n", "")
        asked_before = server.stats.requests
        # Every item is labelled or queued now and nobody answers: a plain rerun still runs
        # one round, for the three failed items alone.
        second = _run(project, server, env)
        assert second.returncode == 0, second.stderr
        assert server.stats.requests - asked_before == 3, second.stdout + second.stderr
    with Store.open(project) as store:
        assert store.count_failed_llm_items() == 0
        assert set(store.latest_votes(Source.LLM.value, list(failed))) == set(failed)
        views = store.queue_views()
        assert all(views[k].suggestion["llm"]["label"] for k in failed)


def test_a_run_against_a_wrong_key_stops_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "a-wrong-key", "HF_HUB_OFFLINE": "1"}
    project = _project(tmp_path, env)
    with LLMTestServer(api_key="the-right-key") as server:
        result = _run(project, server, env)
        assert server.stats.requests <= 5 + 1  # the streak, and at most one call in flight
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0])
    assert "5 calls in a row" in errors[0] and "HTTP 401" in errors[0]
    assert "OPENAI_API_KEY" in errors[0]  # the setting that fixes it
    assert "a-wrong-key" not in result.stderr + result.stdout


# ---- concurrency that fits the server -------------------------------------------------------
def test_a_queuing_server_near_its_timeout_loses_no_item_to_timeouts() -> None:
    """A server that answers one call at a time in 0.3 s, with a 0.5 s timeout: the adaptive
    limit settles at one call in flight and labels every item; a fixed 8 times out."""
    outcomes = {}
    for adaptive in (True, False):
        with LLMTestServer(serial=True, latency_s=0.3) as server:
            backend = make_test_backend(
                "openai", server.base_url, concurrency=8, timeout_s=0.5, retry=FAST_RETRY
            )
            backend.guard.limit.adaptive = adaptive  # type: ignore[attr-defined]
            if not adaptive:
                backend.guard.limit.limit = 8  # type: ignore[attr-defined]
            labeller = Labeller(backend, LABELS, LLMConfig(samples=1, concurrency=8), None)
            decisions = labeller.label_items_sync(items(6))
            outcomes[adaptive] = sum(d.label is not None for d in decisions)
            if adaptive:
                assert backend.guard.limit.peak <= 2  # type: ignore[attr-defined]
    assert outcomes[True] == 6
    assert outcomes[False] < 6


# ---- providers without `n` ----------------------------------------------------------------
@pytest.mark.parametrize("model", ["ollama/llama3.1", "ollama_chat/llama3.1"])
def test_a_provider_without_n_gets_its_samples_one_per_call(model: str) -> None:
    with LLMTestServer(policy=answer_billing) as server:
        root = server.base_url.removesuffix("/v1")  # litellm's Ollama routes add /api/...
        backend = LiteLLMBackend(model, api_base=root, timeout_s=5.0, retry=FAST_RETRY)
        assert not backend.caps.n  # litellm says so before any call
        labeller = Labeller(backend, LABELS, LLMConfig(samples=3), None)
        decisions = labeller.label_items_sync(items(2))
        assert [d.label for d in decisions] == ["billing", "billing"]
        assert all(d.confidence_method == "consistency" for d in decisions)
        assert server.stats.requests == 6 == backend.guard.attempts  # nothing refused first
        assert all("n" not in body for body in server.stats.bodies)
