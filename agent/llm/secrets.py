"""The one redaction function: API keys and key-shaped strings out of everything we keep.

`redact` runs over error messages (`resilience`) and over every piece of LLM text that enters
the store or the reply cache (the Labeller's rationales and invalid-reply records), so a key
that a provider or a model echoes is never stored, logged or exported. It removes the values
of the environment variables that hold credentials (names ending in one of `SECRET_SUFFIXES`,
every variable of `wire.PREFIX_KEY_ENV` among them, plus any name a backend was configured
with) and strings shaped like keys (`SECRET_PATTERNS`), whatever variable they came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

MASK = "***"
MIN_SECRET_CHARS = 8  # shorter values ("1", "true", "test") would mangle ordinary words
SECRET_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_TOKEN_CHARS = r"[A-Za-z0-9._~+/=\-]"
SECRET_PATTERNS = (
    # OpenAI, Anthropic (sk-ant-...), DeepSeek and other "sk-" keys; not inside words ("task-x")
    re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-*]{6,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google API keys
    re.compile(r"\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"),  # GitHub tokens
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),  # Slack tokens
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWTs
    # Bearer credentials: any token with a digit, or a long one ("bearer bonds" stays)
    re.compile(
        rf"(?i)\bbearer\s+(?:(?={_TOKEN_CHARS}*\d){_TOKEN_CHARS}{{4,}}|{_TOKEN_CHARS}{{20,}})"
    ),
)


def secret_env_names(extra: Iterable[str | None] = ()) -> list[str]:
    """Names of the environment variables whose values count as secrets now, plus `extra`."""
    names = [name for name in os.environ if name.upper().endswith(SECRET_SUFFIXES)]
    names.extend(name for name in extra if name)
    return names


def secret_values(extra_env: Iterable[str | None] = ()) -> list[str]:
    """The secret values set in the environment, longest first (so no part of one survives)."""
    values = {os.environ.get(name) or "" for name in secret_env_names(extra_env)}
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str, extra_env: Iterable[str | None] = ()) -> str:
    """`text` with every configured key's value and every key-shaped string replaced by ***.

    `extra_env` names variables that hold a key under a name without a secret suffix (a
    backend's `key_env`). Idempotent; text without secrets comes back unchanged.
    """
    if not text:
        return text
    for value in secret_values(extra_env):
        text = text.replace(value, MASK)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(MASK, text)
    return text
