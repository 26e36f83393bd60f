"""Prompt -> backend -> validated LabelDecision: confidence, re-asks, cache, budgets, concurrency.

Confidence comes from label-token logprobs where the backend returns them, else from the vote
share of `cfg.samples` samples, else (samples == 1) from the model's stated confidence, which
is flagged as such. A reply that does not validate is re-asked with the error fed back, up to
`cfg.max_reasks` times; an item that never validates becomes an abstain whose usage carries
the error and raw reply (`LLMValidationError` only when every item of a request failed).
A text longer than `cfg.max_text_chars` is cut for the prompt with a visible marker; an item
whose prompt the provider still refuses as too long for its context fails alone (an abstain
with the reason) and the rest go on. A call that still fails after its retries fails its items
for this run (`outcomes.CALL_FAILED`: no vote, not cached) and the rest go on, until
`cfg.stop_after_failures` calls in a row have failed: then no more calls are made and the
request raises one line saying so. Every validated answer is written to the cache the moment
it arrives, so nothing is paid twice. LLM text (rationales, invalid replies, errors) passes
through `redact` before it is kept, so no key a model echoes reaches the store or an export.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agent.config import LLMConfig
from agent.errors import AnswerError, ContextLengthError, LLMError, LLMValidationError
from agent.labeller.answers import (
    Answer,
    Reply,
    answer_schema,
    asks_rationale,
    confidence_method,
    judge,
    make_answer_model,
    parse_reply,
)
from agent.labeller.budget import Budget
from agent.labeller.cache import (
    CacheWriter,
    ResponseCache,
    cache_key,
    cache_params,
    from_payload,
    to_row,
)
from agent.labeller.outcomes import (
    CALL_FAILED,
    RAW_CHARS,
    FailureStreak,
    add_share,
    failed_decision,
    gather,
    is_call_failure,
    one_line,
    raise_incomplete,
)
from agent.labeller.prompts import PromptSet
from agent.learn.fewshot import merge_examples
from agent.llm.item_markup import cut_text
from agent.llm.protocol import ChatBackend, ChatChoice, ChatRequest, ChatResponse
from agent.llm.secrets import redact
from agent.types import Item, LabelDecision, LabelSet, text_hash

SAMPLE_TEMPERATURE = 0.7  # self-consistency samples need diversity; used when cfg says 0
TOP_LOGPROBS = 5
Examples = Sequence[tuple[str, str]]


@dataclass
class LabellerStats:
    """Running totals of one Labeller (fresh work only; cached answers count as hits)."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    abstains: int = 0
    reasks: int = 0
    failures: int = 0  # items with no answer (never validated, or too long for the context)
    too_long: int = 0  # of those, items the provider refused as longer than its context window
    cut_texts: int = 0  # texts asked about that were cut to cfg.max_text_chars
    failed_items: int = 0  # items whose call failed after its retries (no vote; asked next run)
    failed_calls: int = 0  # calls that failed after their retries

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Job:
    """One distinct question: an item text with its few-shot examples, under one cache key."""

    key: str
    text: str
    examples: list[tuple[str, str]]
    spent: dict[str, float] = field(default_factory=dict)  # calls, tokens, cost (shares)


@dataclass
class _Run:
    """Per-call state of `label_items`: concurrency limits and what is done so far."""

    sem: asyncio.Semaphore
    probe: asyncio.Lock
    writer: CacheWriter
    done: dict[str, LabelDecision] = field(default_factory=dict)
    failed: dict[str, LLMValidationError] = field(default_factory=dict)


class Labeller:
    """Labels items with an LLM backend; `stats` sums what it spent."""

    def __init__(
        self,
        backend: ChatBackend,
        label_set: LabelSet,
        cfg: LLMConfig,
        cache: ResponseCache | None,
        prompts: PromptSet | None = None,
        *,
        budget: Budget | None = None,
    ) -> None:
        self.backend, self.label_set, self.cfg, self.cache = backend, label_set, cfg, cache
        self.prompts = prompts or PromptSet.load()
        self.prompt_hash = self.prompts.hash(label_set)
        self.method = confidence_method(backend.supports_logprobs, cfg.samples)
        self.budget = budget or Budget(cfg.budget_calls, cfg.budget_usd)
        self.stats = LabellerStats()
        self._streak = FailureStreak(cfg.stop_after_failures)
        self._in_flight: set[asyncio.Future[ChatResponse]] = set()  # cancelled once it trips
        self._key_envs = (getattr(backend, "key_env", None),)  # its key, whatever the name
        self.rationale = asks_rationale(cfg)
        self._model = make_answer_model(label_set, rationale=self.rationale)
        self._schemas = {b: answer_schema(self._model, batch=b) for b in (False, True)}
        structured = backend.supports_json_schema
        self._params = cache_params(
            self.method,
            self._temperature(),
            cfg.samples if self.method == "consistency" else 1,
            cfg.max_tokens,
            self._schemas[False] if structured else None,
        )
        if not self.rationale:  # only then: every cached answer's key stays as it was
            self._params["rationale"] = False

    # ---- public ------------------------------------------------------------------------
    async def label_items(
        self, items: Sequence[Item], examples: Sequence[Examples] | None = None
    ) -> list[LabelDecision]:
        """One decision per item, in order (label None = abstain). Cached answers cost nothing;
        identical questions in one request are asked once."""
        shots = self._shots(items, examples)
        texts = [cut_text(item.text, self.cfg.max_text_chars) for item in items]
        keys = [
            self.cache_key(_hash(item, text), ex) for item, text, ex in zip(items, texts, shots)
        ]
        run = _Run(asyncio.Semaphore(self.cfg.concurrency), asyncio.Lock(), CacheWriter(self.cache))
        pending: dict[str, _Job] = {}
        for item, text, key, ex in zip(items, texts, keys, shots):
            if key in run.done or key in pending:
                continue
            cached = self._from_cache(key)
            if cached is not None:
                run.done[key] = cached
            else:
                pending[key] = _Job(key, text, list(ex))
                self.stats.cut_texts += text != item.text
        self.stats.cache_hits += sum(key in run.done for key in keys)
        jobs = list(pending.values())
        size = self.cfg.items_per_call
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        run.writer.start()
        try:
            errors = await gather(self._run_chunk(run, chunk) for chunk in chunks)
        finally:
            await run.writer.close()
        if self._streak.down is not None:  # even when its last call was the last one asked
            errors.append(self._streak.down)
        decisions = [run.done.get(key) for key in keys]
        raise_incomplete(errors, decisions, run.failed, list(pending))
        return [d for d in decisions if d is not None]

    def label_items_sync(
        self, items: Sequence[Item], examples: Sequence[Examples] | None = None
    ) -> list[LabelDecision]:
        """`label_items` for callers without an event loop (closes the backend's clients for
        that loop before it ends)."""

        async def run() -> list[LabelDecision]:
            try:
                return await self.label_items(items, examples)
            finally:
                await self.backend.aclose()

        return asyncio.run(run())

    def cache_key(self, item_hash: str, examples: Examples) -> str:
        """The cache key of one item's question under this labeller's model, prompts, params;
        `item_hash` hashes the text as the prompt holds it (cut, when it was cut)."""
        return cache_key(self.backend.model, self.prompt_hash, self._params, item_hash, examples)

    # ---- one chunk: a multi-item call, then the bad items alone ---------------------------
    async def _run_chunk(self, run: _Run, jobs: list[_Job]) -> None:
        if len(jobs) == 1:
            await self._label_alone(run, jobs[0])
            return
        texts = [job.text for job in jobs]
        shots = merge_examples([job.examples for job in jobs], self.cfg.few_shot_k)
        messages = self.prompts.messages(self.label_set, texts, shots, rationale=self.rationale)
        try:
            reply, _ = await self._ask(run, jobs, messages)
        except ContextLengthError:  # together they do not fit: alone, only a long one fails
            retry = jobs
        except LLMError as exc:
            if not is_call_failure(exc):
                raise
            self._record_call_failure(run, jobs, exc)
            return
        else:
            retry = [job for job, out in zip(jobs, reply) if isinstance(out, AnswerError)]
            self.stats.reasks += len(retry)
        errors = await gather(self._label_alone(run, job) for job in retry)
        if errors:
            raise errors[0]

    async def _label_alone(self, run: _Run, job: _Job) -> None:
        """Ask about one item; feed each validation error back, at most cfg.max_reasks times.
        A prompt the provider refuses as too long for its context fails this item alone."""
        messages = self.prompts.messages(
            self.label_set, [job.text], job.examples, rationale=self.rationale
        )
        for attempt in range(1, self.cfg.max_reasks + 2):
            try:
                outcome, raw = await self._ask(run, [job], messages)
            except ContextLengthError as exc:
                self._record_too_long(run, job, exc)
                return
            except LLMError as exc:
                if not is_call_failure(exc):
                    raise
                self._record_call_failure(run, [job], exc)
                return
            if not isinstance(outcome[0], AnswerError):
                return
            if attempt <= self.cfg.max_reasks:
                self.stats.reasks += 1
                messages = [
                    *messages,
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": self.prompts.reask_message(str(outcome[0]))},
                ]
        self._record_failure(run, job, attempt, str(outcome[0]), raw)

    # ---- one question: call(s), parse, decide, record -------------------------------------
    async def _ask(
        self, run: _Run, jobs: list[_Job], messages: list[dict[str, str]]
    ) -> tuple[list[LabelDecision | AnswerError], str]:
        """Ask once (several calls when sampling without n support); record what validates."""
        request = self._request(messages, len(jobs))
        choices = await self._sample(run, request, jobs)
        if not choices:
            return [AnswerError("the reply had no choices")] * len(jobs), ""
        replies = [parse_reply(self._model, c.text, len(jobs)) for c in choices]
        outcomes: list[LabelDecision | AnswerError] = []
        for index, job in enumerate(jobs):
            answers = [r.answers[index] for r in replies]
            valid = [a for a in answers if isinstance(a, Answer)]
            if not valid:
                outcomes.append(next(a for a in answers if isinstance(a, AnswerError)))
                continue
            decision = self._decide(job, valid, len(choices), choices[0], replies[0])
            self._record(run, job, decision)
            outcomes.append(decision)
        return outcomes, choices[0].text

    def _request(self, messages: list[dict[str, str]], count: int) -> ChatRequest:
        sampling = self.method == "consistency"
        structured = self.backend.supports_json_schema
        return ChatRequest(
            messages=messages,
            response_schema=self._schemas[count > 1] if structured else None,
            schema_name="label_decisions" if count > 1 else "label_decision",
            n=self.cfg.samples if sampling else 1,
            temperature=self._temperature(),
            max_tokens=self.cfg.max_tokens * count,
            logprobs=self.method == "logprob",
            top_logprobs=TOP_LOGPROBS if self.method == "logprob" else None,
        )

    async def _sample(self, run: _Run, request: ChatRequest, jobs: list[_Job]) -> list[ChatChoice]:
        """All choices of one question: a backend that ignores `n` gets more calls. Once one
        sample is paid, a later call that fails only leaves fewer samples to vote."""
        responses = [await self._call(run, request)]
        choices = list(responses[0].choices)
        while len(choices) < request.n and len(responses) < request.n:
            try:
                extra = await self._call(run, replace(request, n=request.n - len(choices)))
            except LLMError as exc:
                if not is_call_failure(exc):
                    raise
                break
            responses.append(extra)
            if not extra.choices:
                break
            choices.extend(extra.choices)
        for job in jobs:  # each item of a multi-item call carries an equal share
            for response in responses:
                add_share(job.spent, response, len(jobs))
        return choices

    async def _call(self, run: _Run, request: ChatRequest) -> ChatResponse:
        """One backend call within the concurrency limit and the budget. While a dollar limit
        is set and no call's price is known yet, calls go one at a time."""
        async with run.sem:
            if self.budget.needs_probe:
                async with run.probe:
                    if self.budget.needs_probe:
                        return await self._paid_call(request)
            return await self._paid_call(request)

    async def _paid_call(self, request: ChatRequest) -> ChatResponse:
        self._streak.check()  # the endpoint counts as down: no more calls to it
        reserved = self.budget.reserve()
        try:
            response = await self._complete(request)
        except BaseException as exc:
            self.budget.settle(reserved, None)
            if is_call_failure(exc):
                assert isinstance(exc, LLMError)
                self.stats.failed_calls += 1
                self._streak.failed(exc, self.backend.model)
                if self._streak.down is not None:  # calls queued in the backend stop too
                    for call in self._in_flight:
                        call.cancel()
            raise
        self._streak.succeeded()
        self.budget.settle(reserved, response.cost_usd)
        self.stats.calls += 1
        self.stats.prompt_tokens += response.usage.prompt_tokens
        self.stats.completion_tokens += response.usage.completion_tokens
        self.stats.cost_usd += response.cost_usd
        return response

    async def _complete(self, request: ChatRequest) -> ChatResponse:
        """One backend call as a task, so that a tripped failure streak can cancel it (it may
        be queued behind the backend's own concurrency limit)."""
        call = asyncio.ensure_future(self.backend.complete(request))
        self._in_flight.add(call)
        try:
            return await call
        except asyncio.CancelledError:
            if call.cancelled() and self._streak.down is not None:
                raise self._streak.down from None
            raise
        finally:
            self._in_flight.discard(call)

    def _decide(
        self, job: _Job, valid: list[Answer], total: int, first: ChatChoice, reply: Reply
    ) -> LabelDecision:
        """The decision for one item, its confidence by the configured method."""
        verdict = judge(self.method, valid, total, first, reply, self.label_set)
        answer = verdict.answer
        return LabelDecision(
            label=answer.label,
            confidence=verdict.confidence,
            rationale=self._redact(answer.rationale),
            confidence_method=verdict.method,
            usage={**job.spent, "stated_confidence": answer.stated, **verdict.note},
            prompt_hash=self.prompt_hash,
            model=self.backend.model,
        )

    # ---- bookkeeping -----------------------------------------------------------------------
    def _record(self, run: _Run, job: _Job, decision: LabelDecision) -> None:
        """Keep a validated decision and queue it for the cache at once."""
        run.done[job.key] = decision
        if decision.label is None:
            self.stats.abstains += 1
        run.writer.put(to_row(job.key, decision, job.spent))

    def _record_failure(self, run: _Run, job: _Job, attempts: int, error: str, raw: str) -> None:
        """An item that never validated: an abstain with the reason (not cached)."""
        self.stats.failures += 1
        error, raw = self._redact(error), self._redact(raw)
        usage = {**job.spent, "attempts": attempts, "error": error, "raw": raw[:RAW_CHARS]}
        rationale = f"invalid output after {attempts} attempts"
        run.done[job.key] = failed_decision(rationale, usage, self.prompt_hash, self.backend.model)
        run.failed[job.key] = LLMValidationError(
            f"no valid answer after {attempts} attempts: {error}",
            attempts=attempts,
            usage=dict(job.spent),
            raw=raw,
        )

    def _record_call_failure(self, run: _Run, jobs: list[_Job], exc: LLMError) -> None:
        """Items whose call failed after its retries: no answer for this run, the reason kept
        (not cached, so the next run asks again); the request goes on without them."""
        reason = self._redact(one_line(str(exc)))
        for job in jobs:
            self.stats.failed_items += 1
            usage = {**job.spent, "attempts": exc.attempts, "error": reason}
            run.done[job.key] = failed_decision(
                f"LLM call failed: {reason}", usage, self.prompt_hash, self.backend.model,
                method=CALL_FAILED,
            )

    def _record_too_long(self, run: _Run, job: _Job, exc: ContextLengthError) -> None:
        """An item whose prompt exceeds the model's context: an abstain with the reason (not
        cached, nothing paid); the request goes on without it."""
        self.stats.failures += 1
        self.stats.too_long += 1
        usage = {**job.spent, "attempts": exc.attempts, "error": self._redact(str(exc))}
        rationale = "prompt too long for the model's context window"
        run.done[job.key] = failed_decision(rationale, usage, self.prompt_hash, self.backend.model)

    def _from_cache(self, key: str) -> LabelDecision | None:
        payload = self.cache.cache_get(key) if self.cache is not None else None
        if payload is None:
            return None
        decision = from_payload(payload, self.prompt_hash, self.backend.model)
        return replace(decision, rationale=self._redact(decision.rationale))

    def _redact(self, text: str) -> str:
        """LLM text as it may be kept: every key (this backend's too) and key-shaped string out."""
        return redact(text, self._key_envs)

    def _shots(
        self, items: Sequence[Item], examples: Sequence[Examples] | None
    ) -> list[list[tuple[str, str]]]:
        """Each item's few-shot examples, at most cfg.few_shot_k."""
        if examples is None:
            return [[] for _ in items]
        if len(examples) != len(items):
            raise ValueError(f"{len(examples)} example lists for {len(items)} items")
        k, limit = self.cfg.few_shot_k, self.cfg.max_text_chars
        return [[(cut_text(str(t), limit), str(label)) for t, label in ex][:k] for ex in examples]

    def _temperature(self) -> float:
        if self.method == "consistency" and self.cfg.temperature == 0.0:
            return SAMPLE_TEMPERATURE
        return self.cfg.temperature


def _hash(item: Item, text: str) -> str:
    """The hash that keys an item's answer: of its text, or of what was sent when it was cut."""
    if text != item.text:
        return text_hash(text)
    return item.text_hash or text_hash(item.text)
