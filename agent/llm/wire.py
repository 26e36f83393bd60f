"""The OpenAI chat-completion wire format that both adapters share.

Request arguments, mapping a completion (openai JSON or litellm object) to a ChatResponse,
logprobs, malformed-reply classification, token estimates, model prefixes and key variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import openai
import pydantic

from agent.errors import MalformedReply
from agent.llm.capabilities import Capabilities, with_schema_in_prompt
from agent.llm.protocol import ChatChoice, ChatRequest, ChatResponse, TokenLogprob, Usage
from agent.llm.resilience import Failure

PREFIX_KEY_ENV = {"openai/": "OPENAI_API_KEY", "hosted_vllm/": "HOSTED_VLLM_API_KEY"}
LOCAL_PLACEHOLDER_KEY = "not-needed"  # local OpenAI-compatible servers ignore the key


def split_model(model: str) -> tuple[str, str]:
    """('openai/gpt-4o-mini') -> ('gpt-4o-mini', 'OPENAI_API_KEY'): wire name and key variable."""
    for prefix, env in PREFIX_KEY_ENV.items():
        if model.startswith(prefix):
            return model[len(prefix) :], env
    return model, "OPENAI_API_KEY"


def request_kwargs(request: ChatRequest, caps: Capabilities) -> dict[str, Any]:
    """Chat-completion arguments shared by both adapters (everything except model and limits),
    shaped by what the endpoint takes: structured output by `caps.structured` (the schema goes
    into the prompt below json_schema), `n` and logprobs only where accepted."""
    messages = request.messages
    if request.response_schema is not None and caps.structured != "json_schema":
        messages = with_schema_in_prompt(request)
    kwargs: dict[str, Any] = {"messages": messages, "temperature": request.temperature}
    if request.n > 1 and caps.n:
        kwargs["n"] = request.n
    if request.seed is not None:
        kwargs["seed"] = request.seed
    if request.response_schema is not None and caps.structured == "json_schema":
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.schema_name,
                "schema": request.response_schema,
                "strict": True,
            },
        }
    elif request.response_schema is not None and caps.structured == "json_object":
        # `schema` is llama-cpp-python's extension (a grammar from the schema); a server that
        # refuses the key names response_format, and the fallback goes on to text.
        kwargs["response_format"] = {"type": "json_object", "schema": request.response_schema}
    if request.logprobs and caps.logprobs:
        kwargs["logprobs"] = True
        if request.top_logprobs:
            kwargs["top_logprobs"] = request.top_logprobs
    return kwargs


def estimate_tokens(request: ChatRequest) -> int:
    """Tokens a call may use, for the TPM bucket: prompt chars / 4 + max_tokens per sample."""
    prompt_chars = sum(len(message.get("content") or "") for message in request.messages)
    return prompt_chars // 4 + request.max_tokens * request.n


def _field(obj: Any, name: str) -> Any:
    """Read a field from an SDK object or a plain dict (litellm returns either)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def token_logprobs(logprobs: Any) -> list[TokenLogprob] | None:
    """A choice's `logprobs.content` as TokenLogprobs with their top alternatives; None if none."""
    content = _field(logprobs, "content") if logprobs is not None else None
    if not content:
        return None
    tokens = []
    for entry in content:
        top = [
            (str(_field(a, "token")), float(_field(a, "logprob")))
            for a in _field(entry, "top_logprobs") or []
        ]
        tokens.append(
            TokenLogprob(str(_field(entry, "token")), float(_field(entry, "logprob")), top)
        )
    return tokens


def to_chat_response(raw: Any, model: str) -> ChatResponse:
    """Map an OpenAI-shaped completion (openai or litellm object) to a ChatResponse (no cost)."""
    if not _field(raw, "choices"):
        raise MalformedReply(f"reply without choices: {str(raw)[:200]}")
    choices = []
    for choice in _field(raw, "choices"):
        message = _field(choice, "message")
        text = _field(message, "content") if message is not None else None
        choices.append(
            ChatChoice(
                text=text or "",
                logprobs=token_logprobs(_field(choice, "logprobs")),
                finish_reason=_field(choice, "finish_reason"),
            )
        )
    usage = _field(raw, "usage")
    counts = Usage(
        prompt_tokens=int(_field(usage, "prompt_tokens") or 0) if usage is not None else 0,
        completion_tokens=int(_field(usage, "completion_tokens") or 0) if usage is not None else 0,
    )
    return ChatResponse(choices=choices, usage=counts, model=model)


def classify_malformed(exc: BaseException) -> Failure | None:
    """A body that is not JSON, or JSON that is not a chat completion; None for anything else."""
    if isinstance(exc, MalformedReply):
        return Failure("malformed", str(exc))
    if isinstance(
        exc, openai.APIResponseValidationError | json.JSONDecodeError | pydantic.ValidationError
    ):
        doc = exc.doc if isinstance(exc, json.JSONDecodeError) else None
        return Failure("malformed", f"unreadable response body ({type(exc).__name__})", raw=doc)
    return None
