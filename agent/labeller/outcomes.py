"""How a labelling request ends: failed items as abstains with a reason, shares of call usage,
and the error that stops a request while keeping the decisions it made.

An item fails alone (a reply that never validated, a prompt longer than the model's context
window): it becomes an abstain whose rationale says why and whose usage carries the error, is
never cached as a paid answer, and the rest of the request goes on.

A call that still fails after its retries fails its items for this run (`CALL_FAILED`: no vote,
not cached, asked again by the next run) and the request goes on; `stop_after_failures` such
calls in a row (a dead endpoint, a wrong key) stop the run with one line (`FailureStreak`),
before the whole corpus is sent to an endpoint that answers nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from agent.errors import (
    AnswerError,
    BudgetExceededError,
    BudgetStop,
    CallFailed,
    ContextLengthError,
    LabellingFailed,
    LLMError,
    LLMUnavailableError,
    LLMValidationError,
)
from agent.llm.protocol import ChatResponse
from agent.llm.refusals import RefusedField
from agent.types import LabelDecision

RAW_CHARS = 2000  # of an invalid reply kept with its failure (redacted)
CALL_FAILED = "call_failed"  # confidence_method of an item whose call failed after its retries
# LLM errors that are not one call's bad luck: each has its own handling upstream.
_NOT_A_CALL_FAILURE = (
    AnswerError,
    BudgetExceededError,
    ContextLengthError,
    LabellingFailed,
    LLMUnavailableError,
    LLMValidationError,
    RefusedField,
)


def failed_decision(
    rationale: str,
    usage: dict[str, Any],
    prompt_hash: str,
    model: str,
    method: str = "none",
) -> LabelDecision:
    """An item that got no answer: an abstain with confidence 0 and the reason as rationale."""
    return LabelDecision(
        label=None,
        confidence=0.0,
        rationale=rationale,
        confidence_method=method,
        usage=usage,
        prompt_hash=prompt_hash,
        model=model,
    )


def is_call_failure(exc: BaseException) -> bool:
    """Whether `exc` is a call that failed after its retries (its items fail, the run goes on)."""
    return isinstance(exc, LLMError) and not isinstance(exc, _NOT_A_CALL_FAILURE)


def call_failed(decision: LabelDecision | None) -> bool:
    """Whether a decision stands for a failed call (no answer: no vote, retried next run)."""
    return decision is not None and decision.confidence_method == CALL_FAILED


def one_line(text: str, limit: int = 300) -> str:
    """An error message as one line of at most `limit` characters."""
    return " ".join(text.split())[:limit]


@dataclass
class FailureStreak:
    """Calls in a row that failed after their retries; at `limit` the endpoint counts as down
    and no further call is made (`check` raises the one-line `LLMUnavailableError`)."""

    limit: int
    count: int = 0
    down: LLMUnavailableError | None = None

    def succeeded(self) -> None:
        self.count = 0

    def failed(self, exc: LLMError, model: str) -> None:
        self.count += 1
        if self.count < self.limit or self.down is not None:
            return
        fix = exc.fix if isinstance(exc, CallFailed) and exc.fix else "--llm and --api-base"
        self.down = LLMUnavailableError(
            f"the LLM looks unavailable: {self.count} calls in a row to {model} failed after "
            f"their retries, so the run stops (llm.stop_after_failures); last: "
            f"{one_line(str(exc))}; check {fix}",
            attempts=exc.attempts,
            raw=exc.raw,
        )

    def check(self) -> None:
        """Raise once the endpoint counts as down: no more calls to it."""
        if self.down is not None:
            raise self.down


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
    answered = [None if call_failed(d) else d for d in decisions]  # a failed call: no answer
    for error in errors:
        if isinstance(error, BudgetExceededError):
            raise BudgetStop(error, answered) from error
    for error in errors:
        if isinstance(error, LLMError):
            raise LabellingFailed(error, answered) from error
    if pending and all(key in failed for key in pending):
        last = failed[pending[-1]]
        raise LLMValidationError(
            f"every one of {len(pending)} items failed validation; last: {last}",
            attempts=last.attempts,
            usage=last.usage,
            raw=last.raw,
        )
