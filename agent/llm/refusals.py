"""Which request field an endpoint refused, read from its error body, and the error that says so.

Local servers word a refusal in many ways: llama-cpp-python's server answers HTTP 500 with a
pydantic validation list (`('body', 'response_format', 'type')`, "Input should be 'text' or
'json_object'"), vLLM a 400 naming the parameter, OpenAI a 400 with `"param": "logprobs"`. The
same request can never succeed, so it is not retried: the adapter drops the field (see
`capabilities`) or stops with one line naming the field and the setting that fixes it.
"""

from __future__ import annotations

import re

from agent.errors import LLMError

# Longest names first: "top_logprobs" must not be read as "logprobs".
FIELDS = (
    "response_format",
    "max_completion_tokens",
    "top_logprobs",
    "logprobs",
    "max_tokens",
    "temperature",
    "seed",
    "n",
)
_PATTERNS = {
    name: re.compile(
        rf"(?<![\w.])['\"`]{name}['\"`]|(?<![\w.]){name}(?:\.\w|\b)"
        if name != "n"
        else r"(?<![\w.])['\"`]n['\"`]|\bn\s*(?:must|should|is|>|<|=)\s"
    )
    for name in FIELDS
}
# What to set when a field cannot be dropped; a field missing here is left to llm.adapter.
SETTINGS = {
    "response_format": "llm.structured_output: text",
    "logprobs": "llm.samples (self-consistency instead of logprobs)",
    "top_logprobs": "llm.samples (self-consistency instead of logprobs)",
    "n": "llm.samples: 1",
    "temperature": "llm.temperature",
    "max_tokens": "llm.max_tokens",
    "max_completion_tokens": "llm.api_base (an OpenAI-compatible server) or llm.adapter",
    "seed": "llm.adapter: litellm",
}


def refused_field(message: str) -> str | None:
    """The request field an error body names, or None when it names none."""
    for name in FIELDS:
        if _PATTERNS[name].search(message):
            return name
    return None


class RefusedField(LLMError):
    """The endpoint refused a request field (4xx, or 5xx naming the field); never retried."""

    def __init__(
        self, message: str, field: str, *, attempts: int = 1, raw: str | None = None
    ) -> None:
        super().__init__(message, attempts=attempts, raw=raw)
        self.field = field

    def advice(self) -> str:
        """The setting that fixes the refusal, for the one-line error."""
        return SETTINGS.get(self.field, "llm.adapter")
