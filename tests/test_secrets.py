"""Secrets stay out: configured keys and key-shaped strings never reach the store, the reply
cache or an export, even when a model echoes them in its rationale or an invalid reply.

The test server's replies echo the configured key and key-shaped strings; after a Labeller
run and after a whole `labelagent run` + `export`, the bytes of every file in the project
folder and of the exports hold none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_fixtures import ADAPTERS, make_test_backend
from test_labeller_http import GOLD, LABELS
from typer.testing import CliRunner

from agent.config import LLMConfig, ProjectConfig
from agent.labeller.labeller import Labeller
from agent.llm.item_markup import find_items
from agent.llm.resilience import redact as resilience_redact
from agent.llm.secrets import MASK, redact, secret_env_names
from agent.llm.test_server import LLMTestServer, schema_labels
from agent.llm.wire import PREFIX_KEY_ENV
from agent.store.sqlite import Store
from agent.types import Item, text_hash

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic chatter
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "support"
KEY = "configured-key-value-5f1e9c"  # not key-shaped: only its being configured gives it away
SHAPED = (
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
)
SECRETS = (KEY, *SHAPED)
ECHO = f"my key is {KEY}; also {SHAPED[0]} {SHAPED[1]}"


FAILING = next(iter(GOLD))  # the model never answers this text validly, and echoes the secrets


def echo_policy(body: dict[str, Any]) -> str:
    """Gold-ish answers whose rationale leaks secrets (all four fit in 300 characters)."""
    labels = schema_labels(body) or ["billing"]
    texts = [text for _, text in find_items(body["messages"])]
    label = GOLD.get(texts[0], labels[0]) if texts else labels[0]
    if texts and texts[0] == FAILING:
        label = ECHO  # not a label: invalid, re-asked, and in the end a failed item
    rationale = f"{ECHO} {SHAPED[2]} Bearer {SHAPED[3]}"
    return json.dumps({"label": label, "confidence": 0.9, "rationale": rationale})


def leaked(blob: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in blob]


def folder_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


# ---- the one redaction function ---------------------------------------------------------------
def test_redact_removes_configured_keys_and_key_shaped_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("MY_GATEWAY_CREDENTIAL", "gateway-credential-0042")
    text = (
        f"{ECHO} {SHAPED[2]} {SHAPED[3]} Authorization: Bearer abcdef123456 gateway-credential-0042"
    )
    cleaned = redact(text, ["MY_GATEWAY_CREDENTIAL"])
    assert leaked(cleaned.encode()) == [] and "abcdef123456" not in cleaned
    assert "gateway-credential-0042" not in cleaned and cleaned.startswith(f"my key is {MASK}")
    assert "gateway-credential-0042" in redact(text)  # a name without a suffix must be named
    assert resilience_redact is redact and redact(cleaned) == cleaned


def test_redact_leaves_ordinary_text_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_FLAG_TOKEN", "1")  # too short to be a secret: words survive
    text = "a task-specific refund; the bearer bonds; risk-free 1 time; AKIA is a name"
    assert redact(text) == text


def test_every_key_variable_the_adapters_read_counts_as_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [
        *PREFIX_KEY_ENV.values(),
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GEMINI_API_KEY",
        "AZURE_API_KEY",
    ]
    for name in names:
        monkeypatch.setenv(name, f"value-of-{name.lower()}")
    assert set(names) <= set(secret_env_names())
    for name in names:
        assert f"value-of-{name.lower()}" not in redact(f"x value-of-{name.lower()} y")


# ---- the Labeller redacts what it keeps -------------------------------------------------------
def items(n: int) -> list[Item]:
    return [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(list(GOLD)[:n])]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_echoed_key_never_reaches_the_cache_or_the_decisions(
    llm_server: LLMTestServer, tmp_path: Path, adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    llm_server.policy = echo_policy
    cfg = LLMConfig(samples=1, concurrency=1, max_reasks=2)
    with Store.create(tmp_path / "p", LABELS) as store:
        labeller = Labeller(make_test_backend(adapter, llm_server.base_url), LABELS, cfg, store)
        decisions = labeller.label_items_sync(items(4))
        assert decisions[0].label is None and labeller.stats.failures == 1
        assert MASK in decisions[0].usage["raw"] and llm_server.stats.requests == 3 + 3
        assert all(MASK in d.rationale for d in decisions[1:])
        again = Labeller(make_test_backend(adapter, llm_server.base_url), LABELS, cfg, store)
        cached = again.label_items_sync(items(4)[1:])
        assert all(d.cached and MASK in d.rationale for d in cached)
    assert leaked(repr(decisions).encode()) == [] and leaked(repr(cached).encode()) == []
    assert leaked(folder_bytes(tmp_path)) == []


def test_a_key_under_a_name_without_a_secret_suffix_is_redacted(
    llm_server: LLMTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABEL_GATEWAY_CREDENTIAL", KEY)
    llm_server.policy = echo_policy
    backend = make_test_backend(
        "openai", llm_server.base_url, api_key_env="LABEL_GATEWAY_CREDENTIAL"
    )
    labeller = Labeller(backend, LABELS, LLMConfig(samples=1), None)
    (decision,) = labeller.label_items_sync(items(2)[1:])
    assert llm_server.stats.headers[0]["authorization"] == f"Bearer {KEY}"  # the key was used
    assert leaked(decision.rationale.encode()) == []


# ---- a whole run and its exports --------------------------------------------------------------
def invoke(*args: object) -> None:
    result = CliRunner().invoke(_cli_app(), [str(a) for a in args])
    assert result.exit_code == 0, result.output


def _cli_app() -> Any:
    from agent.app.cli import app

    return app


def test_after_a_run_no_secret_is_in_the_project_file_or_an_export(
    llm_server: LLMTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    llm_server.policy = echo_policy
    project = tmp_path / "project"
    invoke("init", project, "--labels", EXAMPLES / "labels.json", "--embedding-model", "hashing")
    invoke("import", project, EXAMPLES / "messages.csv", "--id-col", "id")
    config = ProjectConfig.load(project)
    config.llm.rationale = "always"  # the server is on 127.0.0.1, where none is asked for
    config.save(project)
    invoke("run", project, "--llm", "openai/test-model", "--api-base", llm_server.base_url,
           "--rounds", "1", "--batch-size", "20", "--oracle-file", EXAMPLES / "gold.csv",
           "--human-budget", "5")  # fmt: skip
    assert llm_server.stats.requests >= 20
    with Store.open(project) as store:
        rationales = [a["rationale"] for a in store.annotations(source="llm")]
    assert rationales and all(MASK in r for r in rationales)  # each echoed the key, masked
    for name in ("out.csv", "out.jsonl"):
        invoke("export", project, tmp_path / name)
    assert leaked(folder_bytes(project)) == []
    exported = b"".join((tmp_path / n).read_bytes() for n in ("out.csv", "out.jsonl"))
    assert MASK.encode() in exported and leaked(exported) == []
    assert leaked(folder_bytes(tmp_path)) == []
