"""The litellm adapter (`litellm.acompletion`), for providers that are not OpenAI-compatible.

litellm is imported lazily and quietly (`pricing.import_litellm`): the local cost map (no network
at import), no debug output, no message logging. Its own retries are off; our CallGuard does them.
What the provider takes (`n`, logprobs) is asked of litellm up front: a provider without `n`
(Ollama, Anthropic, ...) gets its samples one per call, as a server that refuses `n` does.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from agent.errors import ConfigError
from agent.llm.capabilities import Capabilities, CapabilityView, initial, with_fallback
from agent.llm.pricing import import_litellm, price_per_token, reported_cost, usage_cost
from agent.llm.protocol import ChatRequest, ChatResponse, Usage
from agent.llm.resilience import (
    CallGuard,
    Failure,
    RetryPolicy,
    connection_failure,
    failure_for_status,
)
from agent.llm.wire import (
    LOCAL_PLACEHOLDER_KEY,
    PREFIX_KEY_ENV,
    classify_malformed,
    estimate_tokens,
    request_kwargs,
    to_chat_response,
)


def classify_litellm_error(exc: BaseException) -> Failure | None:
    """Turn a litellm exception into a Failure; None for errors that are not the call's."""
    if (refused := connection_failure(exc)) is not None:
        return refused
    litellm = import_litellm()
    if isinstance(exc, litellm.ContextWindowExceededError):
        return Failure("context_length", _message(exc), status=400)
    if isinstance(exc, litellm.Timeout):
        return Failure("timeout", "no answer within the timeout")
    if isinstance(exc, litellm.APIConnectionError):
        return Failure("connection", f"could not reach the server: {_message(exc)}")
    status = getattr(exc, "status_code", None)  # every litellm HTTP error carries one
    if isinstance(status, int):
        return failure_for_status(status, _message(exc), _retry_after(exc))
    return classify_malformed(exc)


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


class LiteLLMBackend(CapabilityView):
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
        structured_output: str = "auto",
    ) -> None:
        self._litellm = import_litellm()
        self.model = model
        self.api_base = api_base
        # The variable the key is read from; None: litellm reads the provider's usual one.
        self.key_env = api_key_env or self._key_env_for_local_server()
        self._check_keys()
        self._timeout_s = timeout_s
        self._headers = dict(extra_headers or {})
        self.supports_json_schema = (
            supports_json_schema
            if supports_json_schema is not None
            else self._known(self._litellm.supports_response_schema)
        )
        # What the endpoint takes; refusals and `capabilities.probe` narrow it.
        self.caps: Capabilities = initial(
            structured_output, json_schema=self.supports_json_schema
        )
        params = self._supported_params()
        self.caps.logprobs = (
            supports_logprobs if supports_logprobs is not None else "logprobs" in (params or [])
        )
        self.caps.n = params is None or "n" in params  # unknown: a refusal drops it later
        self.guard = CallGuard(
            model=model,
            concurrency=concurrency,
            rpm=rpm,
            tpm=tpm,
            retry=retry,
            seed=seed,
            key_env=self.key_env,
            adaptive=api_base is not None,  # a self-hosted server: find what it can take
        )

    def __repr__(self) -> str:
        return f"LiteLLMBackend(model={self.model!r}, api_base={self.api_base!r})"

    def _key_env_for_local_server(self) -> str | None:
        """OpenAI-compatible local servers take any key: name the variable to read, if any.

        None leaves the key to litellm, which reads the provider's usual variable.
        """
        if self.api_base is None:
            return None
        return next(
            (env for prefix, env in PREFIX_KEY_ENV.items() if self.model.startswith(prefix)), None
        )

    def _check_keys(self) -> None:
        """Fail at once, naming the variable, when a hosted provider's API key is missing."""
        if self.key_env is not None:
            return
        try:
            report = self._litellm.validate_environment(model=self.model)
        except Exception:  # unknown provider: let the first call report it
            return
        missing = [key for key in report.get("missing_keys", []) if key.endswith("_API_KEY")]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not set in the environment", field="llm.model")

    def _known(self, probe: Any) -> bool:
        """Ask litellm's model map about a capability; an unmapped model answers False."""
        try:
            return bool(probe(model=self.model))
        except Exception:  # unmapped model or provider
            return False

    def _supported_params(self) -> list[str] | None:
        """The OpenAI params litellm passes on to this model's provider; None when it cannot
        tell (an unknown provider)."""
        try:
            name, provider, _, _ = self._litellm.get_llm_provider(
                model=self.model, api_base=self.api_base
            )
            params = self._litellm.get_supported_openai_params(
                model=name, custom_llm_provider=provider
            )
        except Exception:  # unmapped model or provider
            return None
        return None if params is None else [str(p) for p in params]

    def _call_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs = request_kwargs(request, self.caps)
        kwargs.update(
            model=self.model,
            max_tokens=request.max_tokens,
            timeout=self._timeout_s,
            num_retries=0,
            max_retries=0,
        )
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self.key_env is not None:
            placeholder = LOCAL_PLACEHOLDER_KEY if self.api_base is not None else None
            kwargs["api_key"] = os.environ.get(self.key_env) or placeholder
        if self._headers:
            kwargs["extra_headers"] = self._headers
        return kwargs

    def _cost(self, raw: Any, usage: Usage) -> float:
        """USD from litellm's cost map: the cost litellm already computed for this response
        (completion_cost, kept in its hidden params), else per-token prices; 0.0 if unpriced."""
        computed = reported_cost(raw)
        if computed is not None:
            return computed
        return usage_cost(price_per_token(self.model), usage)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One chat call through the concurrency cap, rate limits and retries; a refused
        field is dropped (`capabilities.with_fallback`) and the call made again at once."""
        return await with_fallback(self.caps, lambda: self._complete(request))

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        async def call() -> ChatResponse:
            # Built when it is sent: a refusal seen meanwhile has already narrowed `caps`.
            raw = await self._litellm.acompletion(**self._call_kwargs(request))
            response = to_chat_response(raw, self.model)
            return replace(response, cost_usd=self._cost(raw, response.usage))

        return await self.guard.run(
            call,
            classify_litellm_error,
            tokens=estimate_tokens(request),
            used_tokens=lambda r: r.usage.total_tokens,
        )

    async def aclose(self) -> None:
        """litellm keeps its own shared HTTP clients; nothing of ours to close."""
