"""Build the ChatBackend an LLMConfig describes: openai SDK, litellm, or an eval annotator.

'auto' sends OpenAI models and OpenAI-compatible endpoints ('openai/...', 'hosted_vllm/...',
or a bare model name with an api_base) through the openai SDK, which costs far less CPU per
call, and everything else (anthropic/..., azure/..., ollama/..., bedrock/...) through litellm.
Spec strings 'simulated:...' and 'replay:...' go to `agent.llm.annotators.make_annotator`;
'local' (or 'local:MODEL', a packaged model name or a .gguf path) to the in-process llama.cpp
backend in `agent.llm.local`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agent.config import LLMConfig
from agent.errors import ConfigError
from agent.llm.protocol import ChatBackend
from agent.llm.resilience import RetryPolicy

ADAPTERS = ("auto", "openai", "litellm")
ANNOTATOR_PREFIXES = ("simulated:", "replay:")
OPENAI_COMPATIBLE_PREFIXES = ("openai/", "hosted_vllm/")


def pick_adapter(cfg: LLMConfig) -> str:
    """'openai' or 'litellm' for a live model, following `cfg.adapter` ('auto' decides)."""
    if cfg.adapter not in ADAPTERS:
        raise ConfigError(
            f"unknown adapter {cfg.adapter!r}; use one of {', '.join(ADAPTERS)}",
            field="llm.adapter",
        )
    if cfg.adapter != "auto":
        return cfg.adapter
    model = cfg.model or ""
    if model.startswith(OPENAI_COMPATIBLE_PREFIXES):
        return "openai"
    if cfg.api_base is not None and "/" not in model:
        return "openai"
    return "litellm"


def make_backend(
    cfg: LLMConfig, *, retry: RetryPolicy | None = None, **annotator_context: Any
) -> ChatBackend:
    """The backend for `cfg`. `retry` overrides the backoff delays (attempts come from cfg);
    `annotator_context` (label set, gold, embeddings, ...) is passed on to eval annotators."""
    model = cfg.model
    if not model:
        raise ConfigError("no LLM model configured", field="llm.model")
    if model.startswith(ANNOTATOR_PREFIXES):
        from agent.llm.annotators import make_annotator  # numpy-heavy; evals only

        return make_annotator(model, **annotator_context)
    if model == "local" or model.startswith("local:"):
        from agent.llm.local import make_local_backend  # needs the `local` extra

        return make_local_backend(model, cfg)
    if model.startswith("hosted_vllm/") and cfg.api_base is None:
        raise ConfigError(
            "hosted_vllm models need llm.api_base (the server URL)", field="llm.api_base"
        )
    policy = replace(retry or RetryPolicy(), max_retries=cfg.max_retries)
    common: dict[str, Any] = {
        "api_base": cfg.api_base,
        "timeout_s": cfg.timeout_s,
        "concurrency": cfg.concurrency,
        "rpm": cfg.rpm,
        "tpm": cfg.tpm,
        "retry": policy,
        "structured_output": cfg.structured_output,
    }
    if cfg.logprobs == "never":
        common["supports_logprobs"] = False
    if pick_adapter(cfg) == "openai":
        from agent.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(model, **common)
    from agent.llm.litellm_backend import LiteLLMBackend

    return LiteLLMBackend(model, **common)
