"""Pytest fixtures for LLM tests: the OpenAI-compatible test server and backends pointed at it.

Load them with `pytest_plugins = ("llm_fixtures",)` or import them into a conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.llm.litellm_backend import LiteLLMBackend
from agent.llm.openai_backend import OpenAIBackend
from agent.llm.protocol import ChatBackend
from agent.llm.resilience import RetryPolicy
from agent.llm.test_server import LLMTestServer

# Short delays so retry tests take milliseconds; 3 retries = 4 attempts.
FAST_RETRY = RetryPolicy(max_retries=3, base_delay_s=0.01, max_delay_s=0.05)
TEST_MODEL = "openai/test-model"
ADAPTERS = ("openai", "litellm")

BackendFactory = Callable[..., ChatBackend]


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    """A fresh test server on a free 127.0.0.1 port, stopped after the test."""
    with LLMTestServer() as server:
        yield server


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return FAST_RETRY


def make_test_backend(adapter: str, base_url: str, **overrides: Any) -> ChatBackend:
    """An adapter ('openai' or 'litellm') on the test server with fast retries and 2 s timeout."""
    options: dict[str, Any] = {"api_base": base_url, "retry": FAST_RETRY, "timeout_s": 2.0}
    options.update(overrides)
    model = options.pop("model", TEST_MODEL)
    if adapter == "openai":
        return OpenAIBackend(model, **options)
    if adapter == "litellm":
        options.setdefault("supports_json_schema", True)
        options.setdefault("supports_logprobs", True)
        return LiteLLMBackend(model, **options)
    raise ValueError(f"unknown adapter {adapter!r}; use one of {ADAPTERS}")


@pytest.fixture
def llm_backend(llm_server: LLMTestServer) -> BackendFactory:
    """`llm_backend("openai" | "litellm", **overrides)` -> a backend on `llm_server`."""

    def build(adapter: str = "openai", **overrides: Any) -> ChatBackend:
        return make_test_backend(adapter, llm_server.base_url, **overrides)

    return build


@pytest.fixture(scope="session")
def local_model_path() -> str:
    """The packaged SmolLM2 GGUF and a working llama.cpp runtime, else skip; with
    LABELAGENT_REQUIRE_LOCAL=1 (as `make test-local` sets it) a missing runtime fails instead."""
    import os

    from agent.errors import ConfigError
    from agent.llm.local_models import resolve_model

    try:
        import llama_cpp  # noqa: F401

        return resolve_model("local")[1]
    except (ImportError, ConfigError) as exc:
        if os.environ.get("LABELAGENT_REQUIRE_LOCAL") == "1":
            pytest.fail(f"the local LLM is required here but missing: {exc}")
        pytest.skip(f"local LLM not installed ({exc}); make install-local")
