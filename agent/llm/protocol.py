"""The one protocol every LLM path implements: live adapters, the scripted fake, simulators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion call. `response_schema` asks for structured output when supported."""

    messages: list[dict[str, str]]
    response_schema: dict[str, Any] | None = None
    schema_name: str = "label_decision"
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 256
    logprobs: bool = False
    top_logprobs: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the top alternatives (token, logprob)."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class ChatChoice:
    text: str
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResponse:
    choices: list[ChatChoice]
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    model: str = ""


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that answers chat requests. Retries, rate limits and backoff live in the adapter."""

    model: str
    supports_json_schema: bool
    supports_logprobs: bool

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...
