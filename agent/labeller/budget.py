"""LLM spending: call and dollar budgets checked before every call, and cost estimates.

`Budget` is checked (and a slot reserved) right before each call, so concurrent calls never
overrun the call budget and overrun the dollar budget by at most the error of the estimate.
`estimate_cost` prices a run before it starts from a rendered sample prompt and litellm's
local cost map (no network), through `agent.llm.pricing`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from agent.config import LLMConfig
from agent.errors import BudgetExceededError
from agent.labeller.answers import asks_rationale, confidence_method
from agent.labeller.prompts import PromptSet
from agent.llm.item_markup import ABSTAIN, cut_length
from agent.llm.pricing import import_litellm, tokens_cost
from agent.types import LabelSet

CHARS_PER_TOKEN = 4  # the fallback when no tokenizer is available
_FILLER = "The customer wrote to say that the parcel arrived late and the box was damaged. "
_RATIONALE = "The text is mainly about this topic, and the wording matches the description of it."


class Budget:
    """Limits in calls and dollars (None = unlimited) with the spending so far."""

    def __init__(self, max_calls: int | None = None, max_usd: float | None = None) -> None:
        self.max_calls, self.max_usd = max_calls, max_usd
        self.calls = 0  # completed (paid) calls
        self.spent_usd = 0.0
        self._in_flight = 0
        self._reserved_usd = 0.0

    @property
    def mean_call_usd(self) -> float:
        """Average cost of the calls made so far (0 before the first)."""
        return self.spent_usd / self.calls if self.calls else 0.0

    @property
    def needs_probe(self) -> bool:
        """True while a dollar limit is set and no call's cost is known: run one call alone."""
        return self.max_usd is not None and self.calls == 0

    def reserve(self) -> float:
        """Claim room for one more call; BudgetExceededError if it would break a limit.

        Returns the dollars reserved (the mean call cost so far), to hand back to `settle`.
        """
        if self.max_calls is not None and self.calls + self._in_flight + 1 > self.max_calls:
            raise BudgetExceededError(
                f"call budget reached: {self.calls} of {self.max_calls} calls made"
                f" ({self._in_flight} in flight)",
                usage=self.as_dict(),
            )
        estimate = self.mean_call_usd
        if self.max_usd is not None:
            committed = self.spent_usd + self._reserved_usd
            if self.spent_usd >= self.max_usd or committed + estimate > self.max_usd:
                raise BudgetExceededError(
                    f"dollar budget reached: ${self.spent_usd:.4f} of ${self.max_usd:.4f} spent,"
                    f" next call ~${estimate:.4f}",
                    usage=self.as_dict(),
                )
        self._in_flight += 1
        self._reserved_usd += estimate
        return estimate

    def settle(self, reserved: float, cost_usd: float | None) -> None:
        """Release a reservation; `cost_usd` None means the call failed and was not paid."""
        self._in_flight -= 1
        self._reserved_usd = max(0.0, self._reserved_usd - reserved)
        if cost_usd is not None:
            self.calls += 1
            self.spent_usd += cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "spent_usd": self.spent_usd,
            "max_calls": self.max_calls,
            "max_usd": self.max_usd,
        }


def estimate_cost(
    model: str,
    label_set: LabelSet,
    n_items: int,
    avg_chars: float,
    cfg: LLMConfig,
    *,
    confidence_method: str | None = None,
    prompts: PromptSet | None = None,
    text_lengths: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Expected calls, tokens and dollars to label `n_items` texts of `avg_chars` characters.

    Prompts are rendered with filler texts and cfg.few_shot_k examples; tokens come from
    litellm's tokenizer for `model`. The confidence method (and so the samples per item)
    follows whether litellm says the model returns logprobs, unless given. Re-asks are not
    included. `cost_usd` is None (with a note) when litellm's cost map does not know the model.
    Texts count as cut to cfg.max_text_chars; `cut_texts` (how many) needs `text_lengths`.
    """
    prompts = prompts or PromptSet.load()
    avg_chars, cut = _cut_average(avg_chars, n_items, cfg.max_text_chars, text_lengths)
    if confidence_method is None:
        confidence_method = _likely_method(model, cfg)
    per_call = max(1, min(cfg.items_per_call, n_items))
    full, rest = divmod(n_items, per_call)
    samples = cfg.samples if confidence_method == "consistency" else 1
    prompt_tokens = completion_tokens = 0
    notes = [f"{cut} texts over {cfg.max_text_chars:,} characters cut for a prompt"] if cut else []
    for size, count in ((per_call, full), (rest, 1 if rest else 0)):
        if count:
            p, c = _call_tokens(model, label_set, prompts, size, avg_chars, cfg, notes)
            prompt_tokens += count * p
            completion_tokens += count * c * samples
    cost = _price(model, prompt_tokens, completion_tokens, notes)
    return {
        "model": model,
        "items": n_items,
        "calls": full + (1 if rest else 0),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": cost,
        "confidence_method": confidence_method,
        "cut_texts": cut,
        "max_text_chars": cfg.max_text_chars,
        "note": "; ".join(dict.fromkeys(notes)) or None,
    }


def _cut_average(
    avg_chars: float, n_items: int, limit: int, lengths: Sequence[int] | None
) -> tuple[float, int | None]:
    """(average characters of a text as the prompt holds it, texts cut among `n_items`).

    `lengths` are the characters of each text to label: the average is over their cut lengths
    and the count exact (scaled to `n_items` when there are not as many lengths as items);
    without them `avg_chars` is capped at the cut length and the count is None (unknown).
    """
    if lengths is None:
        return min(avg_chars, float(cut_length(math.ceil(avg_chars), limit))), None
    if not lengths:
        return 0.0, 0
    cut_total = sum(cut_length(length, limit) for length in lengths)
    cut = sum(length > limit for length in lengths)
    share = n_items / len(lengths)
    return cut_total / len(lengths), cut if share == 1 else round(cut * share)


def _call_tokens(
    model: str,
    label_set: LabelSet,
    prompts: PromptSet,
    size: int,
    avg_chars: float,
    cfg: LLMConfig,
    notes: list[str],
) -> tuple[int, int]:
    """(prompt, completion) tokens of one call labelling `size` filler texts."""
    text = (_FILLER * (1 + int(avg_chars) // len(_FILLER)))[: max(1, int(avg_chars))]
    names = label_set.names or (ABSTAIN,)
    examples = [(text, names[i % len(names)]) for i in range(cfg.few_shot_k)]
    rationale = asks_rationale(cfg)
    messages = prompts.messages(label_set, [text] * size, examples, rationale=rationale)
    answer: dict[str, Any] = {"label": max(names, key=len), "confidence": 0.85}
    if rationale:
        answer["rationale"] = _RATIONALE
    reply = json.dumps(
        answer if size == 1 else {"items": [{"n": i + 1, **answer} for i in range(size)]}
    )
    prompt = _count(model, "".join(m["content"] for m in messages), notes)
    return prompt + 4 * len(messages), _count(model, reply, notes)


def _likely_method(model: str, cfg: LLMConfig) -> str:
    """The labeller's confidence method for `model`, from litellm's parameter map."""
    if model.startswith(("simulated:", "replay:")):
        return "logprob"  # the evaluation annotators answer logprobs
    try:
        params = import_litellm().get_supported_openai_params(model=model) or []
    except Exception:  # an unknown provider: assume the OpenAI wire format
        params = ["logprobs"]
    return confidence_method(bool("logprobs" in params), cfg.samples)


def _count(model: str, text: str, notes: list[str]) -> int:
    """Tokens of `text` for `model` by litellm's offline tokenizers, else characters / 4."""
    try:
        return int(import_litellm().token_counter(model=model, text=text))
    except Exception:
        notes.append("tokens estimated as characters / 4")
        return math.ceil(len(text) / CHARS_PER_TOKEN)


def _price(
    model: str, prompt_tokens: int, completion_tokens: int, notes: list[str]
) -> float | None:
    """Dollars from litellm's local cost map; None (with a note) for an unknown model."""
    cost = tokens_cost(model, prompt_tokens, completion_tokens)
    if cost is None:
        notes.append(f"{model!r} is not in litellm's cost map; cost unknown")
    return cost
