"""The exception tree. Every message carries the numbers and the file/row it is about.

LabelAgentError                 base; the CLI turns any of these into one line + exit 2
├── InputError                  bad user input (file, row, field named in the message)
│   ├── LabelSetError           a label file that cannot be read or is empty/duplicated
│   └── ConfigError             a config value out of range or unknown
├── StoreError                  the project folder or its database is missing/incompatible
│   └── LeaseError              a review of an item that another operator holds now
├── PoolExhaustedError          a strategy asked for more items than there are candidates
├── EmbeddingError              the embedding model cannot be loaded
├── EngineError                 the pool-wide engine (Ray) is not installed or not reachable
└── LLMError                    the LLM path failed after retries (attempts, usage, raw reply)
    ├── LLMValidationError      replies never validated against the schema
    ├── AnswerError             one reply that does not validate (fed back when re-asking)
    ├── MalformedReply          a 200 reply that is not a chat completion (retried)
    ├── ContextLengthError      the prompt is longer than the model's context (that item fails)
    ├── CallFailed              one call still failed after its retries (that item fails this run)
    ├── LLMUnavailableError     calls in a row all failed: the endpoint is down or the key wrong
    ├── LabellingFailed         a batch failed after its retries; keeps the decisions made
    └── BudgetExceededError     a call or dollar budget would be exceeded
        └── BudgetStop          a budget ran out mid-request; keeps the decisions made
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.types import LabelDecision


class LabelAgentError(Exception):
    """Base of every error the tool raises on purpose."""


class InputError(LabelAgentError):
    """Bad user input: names the file, row and field where known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.row, self.field = file, row, field
        where = [
            part
            for part in (
                file,
                f"row {row}" if row is not None else None,
                f"field '{field}'" if field is not None else None,
            )
            if part
        ]
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class LabelSetError(InputError):
    """A label file that is unreadable, empty or holds duplicates."""


class ConfigError(InputError):
    """A configuration value that is out of range or unknown."""


class StoreError(LabelAgentError):
    """The project folder or database is missing, locked or of an unknown schema."""


class LeaseError(StoreError):
    """A review was refused: another operator holds the item's lease (nothing was written)."""

    def __init__(self, item_key: int, holder: str, seconds_left: float) -> None:
        self.item_key, self.holder, self.seconds_left = item_key, holder, seconds_left
        super().__init__(
            f"item {item_key} is leased to {holder} for {seconds_left:.0f} s more; this review "
            "was not saved (take another item, or wait until their lease runs out)"
        )


class PoolExhaustedError(LabelAgentError):
    """More items were asked for than there are candidates."""


class EmbeddingError(LabelAgentError):
    """The embedding model could not be loaded or run."""


class EngineError(LabelAgentError):
    """The engine of the pool-wide work (Ray) is not installed, or its cluster not reachable."""


class LLMError(LabelAgentError):
    """The LLM path failed after its retries; carries what was spent."""

    def __init__(
        self,
        message: str,
        *,
        attempts: int = 0,
        usage: dict[str, Any] | None = None,
        raw: str | None = None,
    ) -> None:
        self.attempts, self.usage, self.raw = attempts, usage or {}, raw
        super().__init__(message)


class LLMValidationError(LLMError):
    """The model's replies never validated against the label schema."""


class BudgetExceededError(LLMError):
    """A call or dollar budget would be exceeded by the next call."""


class AnswerError(LLMError, ValueError):
    """A reply that does not validate; the message is fed back to the model when re-asking."""


class MalformedReply(LLMError, ValueError):
    """A 200 reply that is not a chat completion (no choices); retried like a broken body."""


class ContextLengthError(LLMError):
    """The provider refused the prompt as longer than the model's context window (not retried).

    The Labeller marks the item(s) of that call as failed and goes on with the rest.
    """


class CallFailed(LLMError):
    """One call still failed after its retries (timeouts, 5xx, 429, a dropped connection, a
    401). The Labeller marks that call's items failed for this run (not cached, retried on the
    next run) and goes on. `kind` and `status` say what failed, `fix` the setting that helps."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "",
        status: int | None = None,
        fix: str = "",
        attempts: int = 0,
        raw: str | None = None,
    ) -> None:
        super().__init__(message, attempts=attempts, raw=raw)
        self.kind, self.status, self.fix = kind, status, fix


class LLMUnavailableError(LLMError):
    """Calls in a row all failed after their retries (a dead endpoint, a wrong key): the run
    stops with one line naming the error and the setting that fixes it."""


class LabellingFailed(LLMError):
    """The backend failed after its retries; `decisions` keeps what was done."""

    def __init__(self, cause: LLMError, decisions: list[LabelDecision | None]) -> None:
        done = sum(d is not None for d in decisions)
        super().__init__(
            f"{cause} ({done} of {len(decisions)} items labelled before the failure)",
            attempts=cause.attempts,
            usage=cause.usage,
            raw=cause.raw,
        )
        self.decisions = decisions


class BudgetStop(BudgetExceededError):
    """A budget ran out mid-request; `decisions` keeps what was done (None = not labelled)."""

    def __init__(self, cause: LLMError, decisions: list[LabelDecision | None]) -> None:
        super().__init__(str(cause), attempts=cause.attempts, usage=cause.usage, raw=cause.raw)
        self.decisions = decisions
