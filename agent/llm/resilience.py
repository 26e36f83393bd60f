"""Rate limits, a concurrency cap and retry with backoff, shared by both live adapters.

The adapters turn their SDK's exceptions into a neutral `Failure`; `CallGuard.run` decides
whether to wait and try again (429, 5xx, timeouts, dropped connections, unreadable bodies)
or to stop at once (400/401/403/404), and raises `CallFailed` (an `LLMError` that names the
setting most likely to fix it) when the attempts run out. A prompt longer than the model's
context (400 `context_length_exceeded` and its kin, or 413) is a `ContextLengthError`, so that
the caller can fail that one item and go on.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar

from agent.errors import CallFailed, ContextLengthError, LLMError
from agent.llm.concurrency import ConcurrencyLimit
from agent.llm.refusals import RefusedField, refused_field
from agent.llm.secrets import redact as redact  # errors and stored LLM text: one redaction

T = TypeVar("T")

_MAX_NAP_S = 0.05
RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# How providers word "the prompt does not fit" (OpenAI, vLLM, Anthropic, Gemini, litellm).
_CONTEXT_LENGTH = re.compile(
    r"(?i)context_length_exceeded|context[ _]?window|maximum context length|context length"
    r"|prompt is too long|input is too long|too many input tokens|input token count.*exceeds"
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; delays are full-jitter exponential backoff in seconds."""

    max_retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0  # a server asking for a longer pause is a hard failure

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(attempt-1))]."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class Failure:
    """One failed attempt, described without the SDK: what happened and whether to retry."""

    kind: str  # rate_limit | server | timeout | connection | malformed | client | context_length
    message: str
    status: int | None = None
    retry_after_s: float | None = None
    raw: str | None = None
    field: str | None = None  # the request field the body names (a refusal, never transient)

    @property
    def retryable(self) -> bool:
        return self.kind not in ("client", "context_length") and self.field is None

    @property
    def overload(self) -> bool:
        """A sign the server is past its capacity: fewer calls at once may help."""
        return self.kind in ("timeout", "rate_limit") or self.status == 503

    def describe(self, key_envs: tuple[str, ...] = ()) -> str:
        """One line for an error message, with keys (also those in `key_envs`) redacted."""
        status = f"HTTP {self.status} " if self.status is not None else ""
        return f"{status}{self.kind}: {redact(self.message, key_envs)[:300]}"


def fix_for(failure: Failure, key_env: str | None) -> str:
    """The setting that most likely fixes a failure that outlived its retries, for one line."""
    if failure.status in (401, 403):
        return f"the API key in {key_env or 'the provider key variable'}"
    if failure.status == 404:
        return "--llm (llm.model) or --api-base (llm.api_base)"
    if failure.kind == "connection":
        return "--api-base (llm.api_base): is the server running there?"
    if failure.kind == "timeout":
        return "llm.timeout_s (or fewer calls at once: llm.concurrency)"
    if failure.kind == "rate_limit":
        return "llm.rpm / llm.tpm (the provider's rate limits)"
    return "--llm / --api-base (llm.model, llm.api_base); the server's log says more"


def failure_for_status(
    status: int, message: str, retry_after: str | None, code: str | None = None
) -> Failure:
    """Classify an HTTP error status; only 408/409/429/5xx are worth another attempt.

    A 400 whose message or error `code` says the prompt exceeds the context window, or a
    413, is 'context_length': not retried, and raised as `ContextLengthError`. A 4xx or a
    5xx whose body names a request field (`response_format`, `logprobs`, `n`, ...) is a
    refusal of that field: the same request can never succeed, so it is not retried.
    """
    if status == 429:
        kind = "rate_limit"
    elif status in RETRYABLE_STATUS:
        kind = "server"
    elif status == 413 or (status == 400 and is_context_length(f"{message} {code or ''}")):
        kind = "context_length"
    else:
        kind = "client"
    named = None if kind in ("rate_limit", "context_length") else refused_field(message)
    return Failure(
        kind, message, status=status, retry_after_s=parse_retry_after(retry_after), field=named
    )


def is_context_length(message: str) -> bool:
    """Whether an error body says the prompt is longer than the model's context window."""
    return bool(_CONTEXT_LENGTH.search(message))


def connection_failure(exc: BaseException) -> Failure | None:
    """A refused, reset or unresolvable connection anywhere in the exception chain, else None.

    SDK transports sometimes wrap these as timeouts or HTTP 500s; the root cause names them.
    """
    link: BaseException | None = exc
    for _ in range(16):
        if link is None:
            break
        if isinstance(link, ConnectionError | socket.gaierror):
            return Failure("connection", f"could not reach the server ({type(link).__name__})")
        link = link.__cause__ or link.__context__
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (None if absent)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class PerLoop(Generic[T]):
    """One object per running event loop, so a backend survives successive `asyncio.run` calls."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._value is None or self._loop is not loop:
            self._loop, self._value = loop, self._factory()
        return self._value

    def take(self) -> T | None:
        """Hand over (and forget) the object of the running loop; None if it belongs to another."""
        value, loop = self._value, self._loop
        self._value = self._loop = None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return value if loop is running else None


class TokenBucket:
    """Async token bucket: `rate_per_s` refill, `capacity` burst; a large request may go into debt.

    A request waits until the level reaches min(amount, capacity), then takes the full amount,
    so requests bigger than the burst still pass and later ones pay for them.
    """

    def __init__(self, rate_per_s: float, capacity: float) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError(
                f"token bucket needs positive rate and capacity, got {rate_per_s}, {capacity}"
            )
        self.rate_per_s, self.capacity = rate_per_s, capacity
        self._level = capacity
        self._stamp = time.monotonic()
        self._lock: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)

    @classmethod
    def per_minute(cls, limit: int, burst_s: float = 1.0) -> TokenBucket:
        """A bucket for a per-minute limit that may burst `burst_s` seconds' worth (at least 1)."""
        rate = limit / 60.0
        return cls(rate, max(1.0, rate * burst_s))

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until `amount` may be spent, then spend it (FIFO among waiters)."""
        async with self._lock.get():
            self._refill()
            need = min(amount, self.capacity)
            while self._level < need:  # short naps: a refund from `adjust` may arrive early
                await asyncio.sleep(min(_MAX_NAP_S, (need - self._level) / self.rate_per_s))
                self._refill()
            self._level -= amount

    def adjust(self, delta: float) -> None:
        """Charge (positive) or refund (negative) tokens once a call's true size is known."""
        self._refill()
        self._level = min(self.capacity, self._level - delta)


class CallGuard:
    """Concurrency cap (fixed, or `adaptive` to the server's latency) + RPM/TPM buckets +
    bounded retries around one async call.

    A 429 with Retry-After pauses every caller of this guard, not only the one that saw it,
    so a fleet of concurrent workers backs off together instead of hammering the server.
    """

    def __init__(
        self,
        *,
        model: str,
        concurrency: int = 16,
        rpm: int | None = None,
        tpm: int | None = None,
        retry: RetryPolicy | None = None,
        seed: int = 0,
        key_env: str | None = None,
        adaptive: bool = False,
    ) -> None:
        self.model = model
        self.key_envs = (key_env,) if key_env else ()  # a key variable without a secret suffix
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.limit = ConcurrencyLimit(concurrency, adaptive=adaptive)
        self._rpm = TokenBucket.per_minute(rpm) if rpm else None
        self._tpm = TokenBucket.per_minute(tpm) if tpm else None
        self._rng = random.Random(seed)
        self._pause_until = 0.0
        self.attempts = 0  # every attempt made through this guard, for run reports

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        classify: Callable[[BaseException], Failure | None],
        *,
        tokens: int = 0,
        used_tokens: Callable[[T], int] | None = None,
    ) -> T:
        """Run `call` with limits and retries; `tokens` is the TPM estimate, reconciled after.

        Decisions are taken outside the `except` block so the LLMError raised at the end does
        not chain the SDK's exception (whose text may quote request headers).
        """
        attempt = 0
        while True:
            attempt += 1
            await self._admit(tokens)
            try:
                async with self.limit.slot():
                    self.attempts += 1
                    busy, started = self.limit.in_flight, time.monotonic()
                    result = await call()
                    self.limit.succeeded(time.monotonic() - started, busy)
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                if failure.overload:
                    self.limit.overloaded()
            else:
                if self._tpm is not None and used_tokens is not None:
                    self._tpm.adjust(used_tokens(result) - tokens)
                return result
            if not failure.retryable or attempt > self.retry.max_retries:
                raise self._give_up(failure, attempt)
            await self._wait_before_retry(failure, attempt)

    async def _admit(self, tokens: int) -> None:
        """Honour a shared Retry-After pause, then the RPM and TPM buckets."""
        delay = self._pause_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._rpm is not None:
            await self._rpm.acquire(1.0)
        if self._tpm is not None and tokens > 0:
            await self._tpm.acquire(float(tokens))

    async def _wait_before_retry(self, failure: Failure, attempt: int) -> None:
        """Sleep for Retry-After when the server sent one, else for a jittered backoff."""
        if failure.retry_after_s is not None:
            if failure.retry_after_s > self.retry.max_retry_after_s:
                raise self._give_up(failure, attempt, note="Retry-After beyond the allowed pause")
            delay = failure.retry_after_s
            self._pause_until = max(self._pause_until, time.monotonic() + delay)
        else:
            delay = self.retry.backoff(attempt, self._rng)
        await asyncio.sleep(delay)

    def _give_up(self, failure: Failure, attempts: int, note: str = "") -> LLMError:
        """The one error callers see: model, what failed, how many attempts; never a key."""
        verdict = "not retryable" if not failure.retryable else "giving up"
        extra = f" ({note}: {failure.retry_after_s:.0f}s)" if note else ""
        message = (
            f"LLM call to {self.model} failed after {attempts} attempt(s), {verdict}{extra}: "
            f"{failure.describe(self.key_envs)}"
        )
        raw = redact(failure.raw, self.key_envs)[:2000] if failure.raw else None
        if failure.field is not None:
            return RefusedField(message, failure.field, attempts=attempts, raw=raw)
        if failure.kind == "context_length":
            return ContextLengthError(message, attempts=attempts, raw=raw)
        fix = fix_for(failure, self.key_envs[0] if self.key_envs else None)
        return CallFailed(
            message, kind=failure.kind, status=failure.status, fix=fix, attempts=attempts, raw=raw
        )
