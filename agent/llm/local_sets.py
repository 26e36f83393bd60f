"""Multi-label requests to the local model: each label scored yes or no, P(yes) per label.

A set is not one choice among the labels, so the single-label way (score each label as the
continuation, softmax over the set) would make labels compete that may well hold together.
The same way is used per label instead: two continuations, " yes" and " no", scored by their
summed token log-probabilities after a short prompt, a softmax over the two, and the
content-free prior (the same prompt with the text "N/A") taken out first, so that a small
model's habit of saying yes (or no) to everything does not decide. The text comes before the
label in the prompt, so the KV cache keeps it across the labels of one item:

    Text: <item>
    Label: anger: the text expresses anger or strong hostility
    Does the label apply to the text? Answer: yes

The reply (`set_reply.spelled`) lists every label whose yes is likelier than its no (else the
likeliest one: a set is never empty) with log P(yes) as its token's logprob, and every other
label as an alternative of the first slot with its own, which the labeller reads as it reads
any provider's logprobs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from agent.llm.protocol import ChatChoice
from agent.llm.set_reply import spelled

ENDINGS = [" yes\n", " no\n"]
EMPTY_TEXT = "N/A"  # the content-free item of the prior
Scorer = Callable[[str, list[str]], list[float]]  # prompt, endings -> summed log-probabilities
Prior = Callable[[str], list[float]]  # a content-free prompt -> log P(yes), log P(no)


def set_labels(schema: dict[str, Any] | None) -> list[str] | None:
    """The label names of a multi-label answer schema (a "labels" list of label objects);
    None when the request is not for a set."""
    props = (schema or {}).get("properties") or {}
    if "labels" not in props:
        return None
    entry = props["labels"].get("items") or {}
    if "$ref" in entry:  # pydantic's raw form; the labeller sends it written out in place
        entry = ((schema or {}).get("$defs") or {}).get(str(entry["$ref"]).rsplit("/", 1)[-1], {})
    enum = ((entry.get("properties") or {}).get("label") or {}).get("enum")
    return [str(v) for v in enum] if enum else None


def yes_no_prompt(text: str, line: str) -> str:
    """The prompt one label is scored on; `line` is '- name: description' as listed."""
    return (f"Text: {' '.join(text.split())}\nLabel: {line.removeprefix('- ')}\n"
            "Does the label apply to the text? Answer:")  # fmt: skip


def log_softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    total = math.log(sum(math.exp(s - top) for s in scores))
    return [s - top - total for s in scores]


def p_yes(score: Scorer, prompt: str, prior: Prior | None = None) -> float:
    """P(yes) of one label: softmax over " yes" / " no", less the content-free prior."""
    scores = log_softmax(score(prompt, ENDINGS))
    if prior is not None:
        scores = [s - p for s, p in zip(scores, prior(empty_prompt(prompt)))]
    return math.exp(log_softmax(scores)[0])


def empty_prompt(prompt: str) -> str:
    """`prompt` with its text replaced by EMPTY_TEXT (the text is its first line)."""
    return f"Text: {EMPTY_TEXT}\n" + prompt.split("\n", 1)[1]


def label_probabilities(
    score: Scorer, text: str, lines: Sequence[str], prior: Prior | None = None
) -> list[float]:
    """P(yes) for each label line, in order."""
    return [p_yes(score, yes_no_prompt(text, line), prior) for line in lines]


def set_answer(labels: Sequence[str], probs: Sequence[float]) -> ChatChoice:
    """The reply choice: labels with P(yes) > 0.5 (else the likeliest) in the set, the rest
    considered, each with its P(yes), spelled in the tokens' logprobs."""
    best = max(range(len(probs)), key=lambda i: probs[i])
    chosen = [i for i, p in enumerate(probs) if p > 0.5] or [best]

    def entry(i: int) -> dict[str, Any]:
        return {"label": labels[i], "confidence": round(probs[i], 6)}

    answer = {"labels": [entry(i) for i in chosen],
              "considered": [entry(i) for i in range(len(labels)) if i not in chosen],
              "abstain": False, "rationale": ""}  # fmt: skip
    return spelled(answer, logprobs=True)
