"""The labeller's answer cache: keys, payloads, and a writer that never blocks the event loop.

A validated answer is handed to `CacheWriter.put` the moment it validates; a worker thread
writes whatever has queued up, in one transaction when the cache offers `cache_put_many`
(one fsync for many rows), so a crash loses at most the answers of the commit in progress
and a slow disk never stalls the calls in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from typing import Any, Protocol

from agent.types import LabelDecision, text_hash

# (key, model, payload, prompt_tokens, completion_tokens, cost_usd): one paid answer.
CacheRow = tuple[str, str, dict[str, Any], int, int, float]


class ResponseCache(Protocol):
    """What the labeller needs from the store's LLM cache."""

    def cache_get(self, key: str) -> dict[str, Any] | None: ...

    def cache_put(
        self,
        key: str,
        model: str,
        payload: dict[str, Any],
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None: ...


def cache_params(
    method: str, temperature: float, n: int, max_tokens: int, schema: dict[str, Any] | None
) -> dict[str, Any]:
    """Everything besides model, prompts, item and examples that changes a cached answer.

    The items-per-call setting is left out on purpose: an item's answer from a multi-item call
    serves a single-item run too (and the other way round), so re-batching pays nothing.
    """
    schema_hash = None
    if schema is not None:
        schema_hash = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()
    return {
        "method": method,
        "temperature": temperature,
        "n": n,
        "max_tokens": max_tokens,
        "schema": schema_hash and schema_hash[:16],
        "logprobs": method == "logprob",
    }


def cache_key(
    model: str,
    prompt_hash: str,
    params: dict[str, Any],
    item_hash: str,
    examples: Sequence[tuple[str, str]],
) -> str:
    """sha256 of model, prompt hash, call parameters, text hash and few-shot examples."""
    blob = {
        "model": model,
        "prompt": prompt_hash,
        "params": params,
        "text": item_hash,
        "examples": [[text_hash(t), label] for t, label in examples],
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def to_row(key: str, decision: LabelDecision, spent: dict[str, float]) -> CacheRow:
    """The cache row of a fresh decision; `spent` is what its answer cost (shares of calls)."""
    payload = {
        "label": decision.label,
        "confidence": decision.confidence,
        "rationale": decision.rationale,
        "method": decision.confidence_method,
        "usage": decision.usage,
    }
    return (
        key,
        decision.model,
        payload,
        round(spent.get("prompt_tokens", 0.0)),
        round(spent.get("completion_tokens", 0.0)),
        float(spent.get("cost_usd", 0.0)),
    )


def from_payload(payload: dict[str, Any], prompt_hash: str, model: str) -> LabelDecision:
    """A cached answer as a decision that cost nothing now (what it cost is under 'paid')."""
    return LabelDecision(
        label=payload["label"],
        confidence=float(payload["confidence"]),
        rationale=str(payload.get("rationale", "")),
        confidence_method=str(payload.get("method", "stated")),
        cached=True,
        usage={"cached": True, "paid": payload.get("usage", {})},
        prompt_hash=prompt_hash,
        model=model,
    )


class CacheWriter:
    """Queues rows from the event loop and writes them from a worker thread, in groups."""

    def __init__(self, cache: ResponseCache | None) -> None:
        self._cache = cache
        self._rows: list[CacheRow] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    def start(self) -> None:
        if self._cache is not None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def put(self, row: CacheRow) -> None:
        """Queue one paid answer; it is written as soon as the worker is free."""
        if self._task is not None:
            self._rows.append(row)
            self._wake.set()

    async def close(self) -> None:
        """Write everything still queued; re-raises a write failure."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            rows, self._rows = self._rows, []
            if rows:
                await asyncio.to_thread(self._write, rows)
            if self._closing and not self._rows:
                return

    def _write(self, rows: list[CacheRow]) -> None:
        put_many = getattr(self._cache, "cache_put_many", None)
        if put_many is not None:
            put_many(rows)
        else:
            for row in rows:
                self._cache.cache_put(*row)  # type: ignore[union-attr]
        self.written += len(rows)
