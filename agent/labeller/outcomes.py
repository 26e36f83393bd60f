"""How a labelling request ends: failed items as abstains with a reason, shares of call usage,
and the error that stops a request while keeping the decisions it made.

An item fails alone (a reply that never validated, a prompt longer than the model's context
window): it becomes an abstain whose rationale says why and whose usage carries the error, is
never cached as a paid answer, and the rest of the request goes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agent.errors import (
    BudgetExceededError,
    BudgetStop,
    LabellingFailed,
    LLMError,
    LLMValidationError,
)
from agent.llm.protocol import ChatResponse
from agent.types import LabelDecision

RAW_CHARS = 2000  # of an invalid reply kept with its failure (redacted)


def failed_decision(
    rationale: str, usage: dict[str, Any], prompt_hash: str, model: str
) -> LabelDecision:
    """An item that got no answer: an abstain with confidence 0 and the reason as rationale."""
    return LabelDecision(
        label=None,
        confidence=0.0,
        rationale=rationale,
        confidence_method="none",
        usage=usage,
        prompt_hash=prompt_hash,
        model=model,
    )


def add_share(spent: dict[str, float], response: ChatResponse, parts: int) -> None:
    """Add 1/parts of a call's tokens and cost to an item's running usage."""
    for name, value in (
        ("calls", 1.0),
        ("prompt_tokens", response.usage.prompt_tokens),
        ("completion_tokens", response.usage.completion_tokens),
        ("cost_usd", response.cost_usd),
    ):
        spent[name] = spent.get(name, 0.0) + value / parts


async def gather(coroutines: Any) -> list[BaseException]:
    """Run all to completion (a failure never cancels the rest); return the exceptions."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


def raise_incomplete(
    errors: list[BaseException],
    decisions: list[LabelDecision | None],
    failed: dict[str, LLMValidationError],
    pending: list[str],
) -> None:
    """Raise what stopped the request, carrying the decisions made before it; or, when every
    one of the `pending` questions failed validation (`failed`), the last such error."""
    for error in errors:
        if not isinstance(error, LLMError):
            raise error
    for error in errors:
        if isinstance(error, BudgetExceededError):
            raise BudgetStop(error, decisions) from error
    for error in errors:
        if isinstance(error, LLMError):
            raise LabellingFailed(error, decisions) from error
    if pending and all(key in failed for key in pending):
        last = failed[pending[-1]]
        raise LLMValidationError(
            f"every one of {len(pending)} items failed validation; last: {last}",
            attempts=last.attempts,
            usage=last.usage,
            raw=last.raw,
        )
