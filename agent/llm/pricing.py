"""Prices and costs from litellm's local cost map (no network), for both adapters and the budget.

It also owns the one quiet way to import litellm (lazily: importing this module does not): the
bundled cost map, no debug output, no message logging.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from types import ModuleType
from typing import Any

from agent.llm.protocol import Usage

_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm")


@cache
def import_litellm() -> ModuleType:
    """Import litellm once, with the bundled cost map and every kind of logging turned off."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    # No callbacks are registered, so nothing is logged anywhere; turn_off_message_logging
    # would only add a deep copy of every request and reply per call (redaction).
    litellm.turn_off_message_logging = False
    litellm.set_verbose = False
    litellm.disable_streaming_logging = True
    litellm.telemetry = False  # usage pings in older litellm releases; absent in newer ones
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


def usage_cost(price: tuple[float, float] | None, usage: Usage) -> float:
    """USD of one call's usage at (prompt, completion) per-token prices; 0.0 when unpriced."""
    if price is None:
        return 0.0
    per_prompt, per_completion = price
    return usage.prompt_tokens * per_prompt + usage.completion_tokens * per_completion


def reported_cost(raw: Any) -> float | None:
    """The cost litellm already computed for a response (completion_cost, in its hidden
    params); None when it did not."""
    hidden = getattr(raw, "_hidden_params", None) or {}
    computed = hidden.get("response_cost")
    if isinstance(computed, int | float):
        return float(computed)
    return None


def tokens_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD of a token count by litellm's `cost_per_token` (tiered prices included); None when
    the cost map does not know `model`."""
    try:
        costs = import_litellm().cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # litellm raises a plain Exception subclass for unmapped models
        return None
    return float(costs[0]) + float(costs[1])
