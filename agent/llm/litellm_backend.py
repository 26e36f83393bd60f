"""The litellm adapter (`litellm.acompletion`), for providers that are not OpenAI-compatible.

litellm is imported lazily and quietly: the local cost map (no network at import), no debug
output, no message logging. Its own retries are off; our CallGuard does them. This module
also answers prices from litellm's local cost map for both adapters.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from functools import cache
from types import ModuleType
from typing import Any

from agent.llm.openai_backend import estimate_tokens, request_kwargs, to_chat_response
from agent.llm.protocol import ChatRequest, ChatResponse
from agent.llm.resilience import CallGuard, Failure, RetryPolicy, failure_for_status

_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm")


@cache
def import_litellm() -> ModuleType:
    """Import litellm once, with the bundled cost map and every kind of logging turned off."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = True
    litellm.set_verbose = False
    litellm.logging = False
    litellm.disable_streaming_logging = True
    litellm.telemetry = False
    for name in _LITELLM_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    return litellm


@cache
def price_per_token(model: str) -> tuple[float, float] | None:
    """USD per (prompt, completion) token from litellm's local cost map; None if unknown."""
    litellm = import_litellm()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises a plain Exception subclass for unmapped models
        return None
    prompt, completion = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if prompt is None or completion is None:
        return None
    return float(prompt), float(completion)


def classify_litellm_error(exc: BaseException) -> Failure | None:
    """Turn a litellm exception into a Failure; None for errors that are not the call's."""
    litellm = import_litellm()
    if isinstance(exc, litellm.Timeout):
        return Failure("timeout", "no answer within the timeout")
    if isinstance(exc, litellm.APIConnectionError):
        return Failure("connection", f"could not reach the server: {_message(exc)}")
    if isinstance(exc, litellm.APIError | litellm.RateLimitError) or hasattr(exc, "status_code"):
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            return failure_for_status(status, _message(exc), _retry_after(exc))
    if isinstance(exc, ValueError):  # litellm's JSON parsing of a broken body
        return Failure("malformed", f"unreadable response body ({type(exc).__name__})")
    return None


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


def _retry_after(exc: BaseException) -> str | None:
    """Retry-After from the provider's response headers, wherever litellm kept them."""
    for source in (getattr(exc, "litellm_response_headers", None), _response_headers(exc)):
        if source is not None:
            value = source.get("retry-after") or source.get("Retry-After")
            if value is not None:
                return str(value)
    return None


def _response_headers(exc: BaseException) -> Any:
    try:
        response = getattr(exc, "response", None)
    except Exception:  # some litellm errors raise on a missing response
        return None
    return getattr(response, "headers", None)


class LiteLLMBackend:
    """ChatBackend over `litellm.acompletion` for any litellm model string."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        concurrency: int = 16,
        rpm: int | None = None,
        tpm: int | None = None,
        retry: RetryPolicy | None = None,
        supports_json_schema: bool | None = None,
        supports_logprobs: bool | None = None,
        extra_headers: dict[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        self._litellm = import_litellm()
        self.model = model
        self.api_base = api_base
        self._api_key_env = api_key_env  # None: litellm reads the provider's usual variable
        self._timeout_s = timeout_s
        self._headers = dict(extra_headers or {})
        self.supports_json_schema = (
            supports_json_schema
            if supports_json_schema is not None
            else self._known(self._litellm.supports_response_schema)
        )
        self.supports_logprobs = (
            supports_logprobs if supports_logprobs is not None else self._accepts("logprobs")
        )
        self.guard = CallGuard(
            model=model, concurrency=concurrency, rpm=rpm, tpm=tpm, retry=retry, seed=seed
        )

    def __repr__(self) -> str:
        return f"LiteLLMBackend(model={self.model!r}, api_base={self.api_base!r})"

    def _known(self, probe: Any) -> bool:
        """Ask litellm's model map about a capability; an unmapped model answers False."""
        try:
            return bool(probe(model=self.model))
        except Exception:  # unmapped model or provider
            return False

    def _accepts(self, param: str) -> bool:
        """Whether litellm passes `param` on to this model's provider."""
        try:
            return param in (self._litellm.get_supported_openai_params(model=self.model) or [])
        except Exception:  # unmapped model or provider
            return False

    def _call_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs = request_kwargs(
            request, json_schema=self.supports_json_schema, logprobs=self.supports_logprobs
        )
        kwargs.update(
            model=self.model,
            max_tokens=request.max_tokens,
            timeout=self._timeout_s,
            num_retries=0,
            max_retries=0,
        )
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self._api_key_env is not None:
            kwargs["api_key"] = os.environ.get(self._api_key_env)
        if self._headers:
            kwargs["extra_headers"] = self._headers
        return kwargs

    def _cost(self, raw: Any, response: ChatResponse) -> float:
        """litellm.completion_cost on the raw response; 0.0 for models without a price."""
        try:
            return float(self._litellm.completion_cost(completion_response=raw, model=self.model))
        except Exception:  # unmapped model: litellm raises instead of pricing at zero
            return 0.0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One chat call through the concurrency cap, rate limits and retries."""
        kwargs = self._call_kwargs(request)

        async def call() -> ChatResponse:
            raw = await self._litellm.acompletion(**kwargs)
            response = to_chat_response(raw, self.model)
            return replace(response, cost_usd=self._cost(raw, response))

        return await self.guard.run(
            call,
            classify_litellm_error,
            tokens=estimate_tokens(request),
            used_tokens=lambda r: r.usage.total_tokens,
        )

    async def aclose(self) -> None:
        """litellm keeps its own shared HTTP clients; nothing of ours to close."""
