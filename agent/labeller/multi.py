"""The LLM's multi-label answer: prompt, a pydantic schema whose labels are constrained to the
set, validation with bounded re-asks, the reply cache (a paid reply is never paid twice) and
the call budget.

A decision gives every label of the set a chance of being in the item's set, by the method
the backend allows (`set_scores`): token log-probabilities where it returns them, else the
share of `llm.samples` samples whose set holds the label, else the confidence it states; the
decision records which. Any ChatBackend serves (OpenAI-compatible, litellm, local, the
simulated multi-label LLM), since the request is an ordinary structured-output call.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agent.config import LLMConfig
from agent.errors import AnswerError, BudgetExceededError, LLMError
from agent.labeller.answers import confidence_method, first_json, strict_schema
from agent.labeller.budget import Budget
from agent.labeller.labeller import SAMPLE_TEMPERATURE, TOP_LOGPROBS
from agent.labeller.outcomes import FailureStreak, is_call_failure
from agent.labeller.prompts import find_prompt_dir
from agent.labeller.set_scores import (
    UNMENTIONED,
    answer_set,
    first_rationale,
    given,
    stated_scores,
    token_scores,
    vote_scores,
)
from agent.labeller.set_tokens import slot_chances
from agent.llm.item_markup import cut_text, item_block
from agent.llm.protocol import ChatBackend, ChatChoice, ChatRequest, ChatResponse
from agent.store.protocol import ProjectStore
from agent.types import Item, LabelSet

SCHEMA_NAME = "label_set_decision"
CHANCES = "token_chances"  # payload key: each label's chance over the reply's slots
Payload = dict[str, Any]


@dataclass(frozen=True)
class SetDecision:
    """One item's answer: `labels` None is an abstain; `scores` (C,) P(label in the set);
    `method` which evidence gave them (logprob | consistency | stated), `note` its detail."""

    labels: tuple[str, ...] | None
    scores: tuple[float, ...]
    rationale: str = ""
    model: str = ""
    prompt_hash: str = ""
    cached: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    method: str = "stated"
    note: dict[str, Any] = field(default_factory=dict)


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
    """Asks a ChatBackend for label sets, one item per call, cached in the project store;
    `calls` counts paid calls (every sample and re-ask), `budget` caps them."""

    def __init__(
        self, backend: ChatBackend, label_set: LabelSet, config: LLMConfig, store: ProjectStore,
        budget: Budget | None = None,
    ) -> None:  # fmt: skip
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
        logprobs = backend.supports_logprobs and config.logprobs != "never"
        self.method = confidence_method(logprobs, config.samples)
        self.budget = budget or Budget(config.budget_calls, config.budget_usd)
        self.budget_reached = False  # a call was refused by the budget
        self.calls = 0
        self.items_paid = 0  # items that took at least one paid call
        self.cache_hits = 0

    @property
    def calls_per_item(self) -> float:
        """Paid calls an item takes: as seen so far (samples share a call where the backend
        takes `n`; re-asks add calls), before any, the most it may take: its samples."""
        if self.items_paid:
            return self.calls / self.items_paid
        return float(self._samples())

    def _samples(self) -> int:
        return self.config.samples if self.method == "consistency" else 1

    def limit_calls(self, left: int) -> None:
        """Allow at most `left` more paid calls (a budget of the caller's, e.g. the run's)."""
        cap = self.budget.calls + max(left, 0)
        self.budget.max_calls = cap if self.budget.max_calls is None else min(
            self.budget.max_calls, cap)  # fmt: skip

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
        so does a batch whose every call failed (the endpoint answered nothing). An item the
        budget leaves unasked is None too (its paid samples are cached for a later run)."""
        gate = asyncio.Semaphore(self.config.concurrency)
        streak = FailureStreak(self.config.stop_after_failures)
        failures: list[LLMError] = []

        async def one(item: Item) -> SetDecision | None:
            async with gate:
                streak.check()
                try:
                    decision = await self._label_one(item)
                except BudgetExceededError:
                    self.budget_reached = True
                    return None
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
        """Collect the item's answers: one, or `samples` for a vote, each paid call cached
        under its own key the moment it validates, so a rerun (or a later run asking for more
        samples) pays only for what is missing."""
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.template.replace(
                "$item", item_block(1, cut_text(item.text, self.config.max_text_chars)))},
        ]  # fmt: skip
        samples: list[Payload | None] = []
        paid = False
        for call in itertools.count():
            if len(samples) >= self._samples():
                break
            entry = self._cached(item, call)
            if entry is None:
                entry = await self._paid_answer(self._key(item, call), messages,
                                                self._samples() - len(samples))  # fmt: skip
                self.items_paid += not paid  # counted once its calls are made
                paid = True
                if entry is None:
                    break
            got = entry.get("samples", [entry])
            samples.extend(got)
            if not got:
                break
        if not any(s is not None for s in samples):
            return None
        self.cache_hits += not paid
        return self._decision(samples, cached=not paid)

    def _cached(self, item: Item, call: int) -> dict[str, Any] | None:
        """The cached answer of the `call`-th paid call about `item`. Where logprobs are read
        and none is cached, an answer paid for before they were (its stated key, the same
        question at the same temperature) serves rather than being paid for again; it is
        scored by its stated word, and says so."""
        entry = self.store.cache_get(self._key(item, call))
        if entry is None and self.method == "logprob":
            entry = self.store.cache_get(self._key(item, call, "stated"))
        return entry

    def _key(self, item: Item, call: int, method: str | None = None) -> str:
        """The cache key of one paid call about `item`. Sampling settings are part of the
        question (a reply at another temperature or token limit is another answer), and so is
        the method: a reply read for its logprobs, or the `call`-th call of a vote, is never
        served from another's entry. A stated answer keeps the key it always had."""
        method = method or self.method
        asked = f"{self._temperature()}|{self._max_tokens()}"
        if method == "logprob":
            asked += "|logprob"
        elif method == "consistency":
            asked += f"|consistency|{call}"
        return hashlib.sha256(
            f"{SCHEMA_NAME}|{self.backend.model}|{self.prompt_hash}|{asked}|{item.text_hash}"
            .encode()
        ).hexdigest()

    async def _paid_answer(
        self, key: str, messages: list[dict[str, str]], n: int
    ) -> dict[str, Any] | None:
        """One paid call for `n` samples (re-asked with the error while none validates), cached
        at once: a payload, or {"samples": [...]} for a vote. None if nothing ever validated."""
        for _ in range(self.config.max_reasks + 1):
            reply = await self._ask(messages, n)
            checked = [self._validated(choice) for choice in reply.choices]
            valid = [c for c in checked if not isinstance(c, Exception)]
            if not valid:
                error = next((c for c in checked if isinstance(c, Exception)),
                             AnswerError("the reply had no choices"))  # fmt: skip
                text = reply.choices[0].text if reply.choices else ""
                why = f"That answer was invalid ({_short(error)}). "
                messages = [*messages, {"role": "assistant", "content": text},
                            {"role": "user", "content": why + "Reply again with the JSON "
                             "object only."}]  # fmt: skip
                continue
            entry: dict[str, Any] = (
                {"samples": [None if isinstance(c, Exception) else c for c in checked]}
                if self.method == "consistency" else valid[0]
            )  # fmt: skip
            usage = reply.usage
            self.store.cache_put(key, reply.model or self.backend.model, entry,
                                 usage.prompt_tokens, usage.completion_tokens,
                                 reply.cost_usd)  # fmt: skip
            return entry
        return None

    def _validated(self, choice: ChatChoice) -> Payload | Exception:
        """A choice's answer as a payload (with each label's chance from its tokens when
        logprobs were asked and the reply spells them), or why it is invalid."""
        try:
            answer = self.model.model_validate(first_json(choice.text))
        except (AnswerError, ValidationError) as exc:
            return exc
        payload: Payload = answer.model_dump()
        if self.method == "logprob":
            chances = slot_chances(choice.text, choice.logprobs, given(payload),
                                   self.label_set.names)  # fmt: skip
            if chances is not None:
                payload[CHANCES] = chances
        return payload

    async def _ask(self, messages: list[dict[str, str]], n: int) -> ChatResponse:
        """One backend call within the budget (BudgetExceededError when it has no room)."""
        schema = (strict_schema(self.model.model_json_schema())
                  if self.backend.supports_json_schema else None)  # fmt: skip
        logprobs = self.method == "logprob"
        request = ChatRequest(messages=messages, response_schema=schema, schema_name=SCHEMA_NAME,
                              n=n, temperature=self._temperature(), max_tokens=self._max_tokens(),
                              logprobs=logprobs,
                              top_logprobs=TOP_LOGPROBS if logprobs else None)  # fmt: skip
        reserved = self.budget.reserve()
        try:
            reply = await self.backend.complete(request)
        except BaseException:
            self.budget.settle(reserved, None)
            raise
        self.budget.settle(reserved, reply.cost_usd)
        self.calls += 1
        return reply

    def _max_tokens(self) -> int:
        return max(self.config.max_tokens, 512)  # a set with rationale needs room

    def _temperature(self) -> float:
        """Samples need diversity: a vote at temperature 0 samples at SAMPLE_TEMPERATURE."""
        if self.method == "consistency" and self.config.temperature == 0.0:
            return SAMPLE_TEMPERATURE
        return self.config.temperature

    def _decision(self, samples: list[Payload | None], cached: bool) -> SetDecision:
        """Scores (C,) by the labeller's method; an abstain, or an empty set, has no labels."""
        labels = self.label_set
        if self.method == "consistency":
            chosen, scores, note = vote_scores(samples, labels)
            return SetDecision(chosen, tuple(scores), first_rationale(samples, chosen),
                               self.backend.model, self.prompt_hash, cached,
                               method="consistency", note=note)  # fmt: skip
        payload = next(s for s in samples if s is not None)
        method, note = "stated", {"stated_only": True}
        if self.method == "logprob" and CHANCES in payload:
            scores, method, note = token_scores(payload, payload[CHANCES], labels), "logprob", {}
        else:
            scores = stated_scores(payload, labels)
            if self.method == "logprob":
                note["confidence_note"] = "no label logprobs in the reply"
        return SetDecision(answer_set(payload, labels), tuple(scores),
                           str(payload.get("rationale", "")), self.backend.model,
                           self.prompt_hash, cached, method=method, note=note)  # fmt: skip


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def decision_json(decision: SetDecision, label_set: LabelSet) -> dict[str, Any]:
    """What the queue and the export keep of an LLM decision."""
    return {
        "labels": list(decision.labels) if decision.labels is not None else None,
        "scores": {n: round(s, 4) for n, s in zip(label_set.names, decision.scores)},
        "rationale": decision.rationale,
        "method": decision.method,
    }


__all__ = [
    "UNMENTIONED", "MultiLabeller", "SetDecision", "decision_json", "make_set_model",
]  # fmt: skip
