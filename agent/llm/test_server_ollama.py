"""Ollama's native API (`/api/chat`, `/api/generate`) over the test server's OpenAI answers.

litellm's `ollama_chat/` and `ollama/` routes speak these, not the OpenAI wire format, and
take no `n`: the test server translates an Ollama request into the chat-completion body its
policies and fault knobs read, and its one-choice completion back into Ollama's reply.
"""

from __future__ import annotations

import time
from typing import Any

OLLAMA_ROUTES = {"/api/chat": "chat", "/api/generate": "generate"}


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completion body an Ollama request stands for (`format` -> response_format)."""
    messages = body.get("messages") or [{"role": "user", "content": str(body.get("prompt", ""))}]
    out: dict[str, Any] = {"model": body.get("model", ""), "messages": messages}
    fmt = body.get("format")
    if isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt}}
    elif fmt == "json":
        out["response_format"] = {"type": "json_object"}
    options = body.get("options") or {}
    for name in ("n", "temperature"):  # Ollama would ignore an `n`; recorded for tests
        if name in options:
            out[name] = options[name]
    return out


def to_ollama(kind: str, completion: dict[str, Any]) -> dict[str, Any]:
    """Ollama's non-streaming reply to `kind` ('chat' | 'generate') from a chat completion."""
    text = completion["choices"][0]["message"]["content"]
    usage = completion.get("usage") or {}
    reply: dict[str, Any] = {
        "model": completion.get("model", ""),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": int(usage.get("prompt_tokens", 0)),
        "eval_count": int(usage.get("completion_tokens", 0)),
    }
    if kind == "chat":
        reply["message"] = {"role": "assistant", "content": text}
    else:
        reply["response"] = text
    return reply
