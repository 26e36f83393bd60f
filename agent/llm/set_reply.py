"""A multi-label answer as a backend writes it: the JSON text and, when asked, token logprobs
that spell each label's chance (shared by the simulated multi-label LLM and the local model).

Each label in "labels" is a token of its own whose log-probability is the log of its chance;
the labels under "considered" are the alternatives of the first slot with theirs, as a model
that might have written them there would show them. `agent.labeller.set_tokens` reads them back.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agent.llm.protocol import ChatChoice, TokenLogprob


def spelled(answer: dict[str, Any], logprobs: bool) -> ChatChoice:
    """The reply to `answer` (labels, considered, abstain, rationale) as JSON text, with
    tokens whose log-probabilities are the chances it states (when `logprobs`)."""
    considered = [(_written(e["label"]), math.log(max(e["confidence"], 1e-9)))
                  for e in answer["considered"]]  # fmt: skip
    pieces: list[tuple[str, float, list[tuple[str, float]]]] = [('{"labels": [', 0.0, [])]
    for slot, entry in enumerate(answer["labels"]):
        logprob = math.log(max(entry["confidence"], 1e-9))
        rivals = considered if slot == 0 else []  # a left-out label could have come first
        name = _written(entry["label"])
        pieces.append(((", " if slot else "") + '{"label": "', 0.0, []))
        pieces.append((name, logprob, [(name, logprob), *rivals]))
        pieces.append((f'", "confidence": {json.dumps(entry["confidence"])}}}', 0.0, []))
    rest = {k: answer[k] for k in ("considered", "abstain", "rationale")}
    pieces.append(("], " + json.dumps(rest)[1:], 0.0, []))
    text = "".join(p[0] for p in pieces)
    tokens = [TokenLogprob(tok, lp, top) for tok, lp, top in pieces] if logprobs else None
    return ChatChoice(text=text, logprobs=tokens, finish_reason="stop")


def _written(name: str) -> str:
    """A label name as the JSON text writes it (escapes and all)."""
    return json.dumps(name)[1:-1]
