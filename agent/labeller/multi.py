"""The LLM's multi-label answer: prompt, a pydantic schema whose labels are constrained to the
set, validation with bounded re-asks, and the reply cache (a paid reply is never paid twice).

A decision gives every label of the set a chance of being in the item's set: the stated
confidence of a label it gives, the (below one half) chance of a label it only `considered`,
and UNMENTIONED for the rest. Any ChatBackend serves (OpenAI-compatible, litellm, local,
the simulated multi-label LLM), since the request is an ordinary structured-output call.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agent.config import LLMConfig
from agent.errors import AnswerError, LLMError
from agent.labeller.answers import first_json
from agent.labeller.outcomes import FailureStreak, is_call_failure
from agent.labeller.prompts import find_prompt_dir
from agent.llm.item_markup import cut_text, item_block
from agent.llm.protocol import ChatBackend, ChatRequest
from agent.store.protocol import ProjectStore
from agent.types import Item, LabelSet

UNMENTIONED = 0.02  # P(in the set) of a label the LLM neither gave nor considered
SCHEMA_NAME = "label_set_decision"


@dataclass(frozen=True)
class SetDecision:
    """One item's answer: `labels` None is an abstain; `scores` (C,) P(label in the set)."""

    labels: tuple[str, ...] | None
    scores: tuple[float, ...]
    rationale: str = ""
    model: str = ""
    prompt_hash: str = ""
    cached: bool = False
    usage: dict[str, Any] = field(default_factory=dict)


def make_set_model(label_set: LabelSet) -> type[BaseModel]:
    """The answer model: label names constrained to the set, a confidence in [0, 1] each."""
    name_type = Literal[tuple(label_set.names)]  # type: ignore[valid-type]
    score = create_model(
        "LabelScore",
        __config__=ConfigDict(extra="ignore"),
        label=(name_type, ...),  # type: ignore[arg-type]
        confidence=(float, Field(ge=0.0, le=1.0)),
    )
    return create_model(
        "LabelSetAnswer",
        __config__=ConfigDict(extra="ignore"),
        labels=(list[score], Field(default_factory=list)),  # type: ignore[valid-type]
        considered=(list[score], Field(default_factory=list)),  # type: ignore[valid-type]
        abstain=(bool, False),
        rationale=(str, ""),
    )


class MultiLabeller:
    """Asks a ChatBackend for label sets, one item per call, cached in the project store."""

    def __init__(
        self, backend: ChatBackend, label_set: LabelSet, config: LLMConfig, store: ProjectStore
    ) -> None:
        self.backend, self.label_set, self.config, self.store = backend, label_set, config, store
        self.model = make_set_model(label_set)
        folder = find_prompt_dir()
        self.system = folder.joinpath("system.txt").read_text(encoding="utf-8")
        self.template = folder.joinpath("multi_label.txt").read_text(encoding="utf-8")
        pairs = zip(label_set.names, label_set.descriptions)
        listing = "\n".join(f"- {n}: {d}" if d else f"- {n}" for n, d in pairs)
        self.template = self.template.replace("$labels", listing)
        self.prompt_hash = hashlib.sha256(
            (self.system + self.template).encode("utf-8")
        ).hexdigest()[:16]
        self.calls = 0
        self.cache_hits = 0

    def label(self, items: list[Item]) -> list[SetDecision | None]:
        """A decision per item (None where every re-ask failed validation), in order; the
        backend's clients for this event loop are closed before it ends, as the Labeller's."""

        async def run() -> list[SetDecision | None]:
            try:
                return await self._label_all(items)
            finally:
                await self.backend.aclose()

        return asyncio.run(run())

    async def _label_all(self, items: list[Item]) -> list[SetDecision | None]:
        """A call that fails after its retries fails its item alone (None: not cached, asked
        again next run), as single-label's; `stop_after_failures` in a row stop the run, and
        so does a batch whose every call failed (the endpoint answered nothing)."""
        gate = asyncio.Semaphore(self.config.concurrency)
        streak = FailureStreak(self.config.stop_after_failures)
        failures: list[LLMError] = []

        async def one(item: Item) -> SetDecision | None:
            async with gate:
                streak.check()
                try:
                    decision = await self._label_one(item)
                except LLMError as exc:
                    if not is_call_failure(exc):
                        raise
                    failures.append(exc)
                    streak.failed(exc, self.backend.model)
                    return None
                streak.succeeded()
                return decision

        decisions = list(await asyncio.gather(*(one(it) for it in items)))
        streak.check()
        if failures and len(failures) == len(items):
            raise failures[-1]
        return decisions

    async def _label_one(self, item: Item) -> SetDecision | None:
        # Sampling settings are part of the question: a reply at another temperature or token
        # limit is another answer, never served from this one's cache entry.
        asked = f"{self.config.temperature}|{self._max_tokens()}"
        key = hashlib.sha256(
            f"{SCHEMA_NAME}|{self.backend.model}|{self.prompt_hash}|{asked}|{item.text_hash}"
            .encode()
        ).hexdigest()
        hit = self.store.cache_get(key)
        if hit is not None:
            self.cache_hits += 1
            return self._decision(hit, cached=True)
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.template.replace(
                "$item", item_block(1, cut_text(item.text, self.config.max_text_chars)))},
        ]  # fmt: skip
        for _ in range(self.config.max_reasks + 1):
            reply = await self._ask(messages)
            self.calls += 1
            try:
                answer = self.model.model_validate(first_json(reply.choices[0].text))
            except (AnswerError, ValidationError, IndexError) as exc:
                text = reply.choices[0].text if reply.choices else ""
                messages = [*messages, {"role": "assistant", "content": text},
                            {"role": "user", "content": f"That answer was invalid ({_short(exc)}). "
                             "Reply again with the JSON object only."}]  # fmt: skip
                continue
            payload = answer.model_dump()
            usage = reply.usage
            self.store.cache_put(key, reply.model or self.backend.model, payload,
                                 usage.prompt_tokens, usage.completion_tokens,
                                 reply.cost_usd)  # fmt: skip
            return self._decision(payload, cached=False)
        return None

    async def _ask(self, messages: list[dict[str, str]]) -> Any:
        schema = self.model.model_json_schema() if self.backend.supports_json_schema else None
        request = ChatRequest(messages=messages, response_schema=schema, schema_name=SCHEMA_NAME,
                              temperature=self.config.temperature,
                              max_tokens=self._max_tokens())  # fmt: skip
        return await self.backend.complete(request)

    def _max_tokens(self) -> int:
        return max(self.config.max_tokens, 512)  # a set with rationale needs room

    def _decision(self, payload: dict[str, Any], cached: bool) -> SetDecision:
        """Scores (C,) from a validated payload; an abstain, or an empty set, has no labels."""
        scores = [UNMENTIONED] * len(self.label_set)
        for entry in payload.get("considered", []):
            scores[self.label_set.index(entry["label"])] = min(float(entry["confidence"]), 0.49)
        given = []
        for entry in payload.get("labels", []):
            scores[self.label_set.index(entry["label"])] = max(float(entry["confidence"]), 0.51)
            given.append(entry["label"])
        labels = None if payload.get("abstain") or not given else tuple(
            n for n in self.label_set.names if n in set(given))  # fmt: skip
        return SetDecision(labels, tuple(scores), str(payload.get("rationale", "")),
                           self.backend.model, self.prompt_hash, cached)  # fmt: skip


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def decision_json(decision: SetDecision, label_set: LabelSet) -> dict[str, Any]:
    """What the queue and the export keep of an LLM decision."""
    return {
        "labels": list(decision.labels) if decision.labels is not None else None,
        "scores": {n: round(s, 4) for n, s in zip(label_set.names, decision.scores)},
        "rationale": decision.rationale,
    }


__all__ = ["MultiLabeller", "SetDecision", "decision_json", "make_set_model"]
