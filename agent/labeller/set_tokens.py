"""P(label in the set) from the token log-probabilities of a multi-label answer.

The answer lists its set as `"labels": [{"label": "anger", ...}, ...]`. At each place where a
label name is written (a slot) the model chose that name among all it could have written
there: the written name has the probability of its tokens, and the top alternatives of its
first token give other labels their chance of taking that slot. A label sits at most once in a
set, so its chance of being in the set is the sum of its chances over the slots (at most 1).
Only the path the model took is seen: a label it would have written in a slot it never reached
is missed, so these chances lean low for labels left out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

from agent.llm.protocol import TokenLogprob

_LABELS_KEY_RE = re.compile(r'"labels"\s*:\s*\[')
_LABEL_VALUE_RE = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"')


def slot_chances(
    text: str, tokens: Sequence[TokenLogprob] | None, given: Sequence[str], names: Sequence[str]
) -> dict[str, float] | None:
    """Each label's summed chance over the slots of the "labels" list (labels never seen at a
    slot are absent). None where the tokens do not spell `text` or the slots do not name
    `given` in order: the caller then has no token evidence for this reply."""
    if not tokens or "".join(t.token for t in tokens) != text:
        return None
    slots = label_slots(text)
    if [_decode(text[lo:hi]) for lo, hi in slots] != list(given):
        return None
    starts = [0]
    for token in tokens:
        starts.append(starts[-1] + len(token.token))
    chances: dict[str, float] = {}
    for (lo, hi), name in zip(slots, given):
        covering = [i for i in range(len(tokens)) if starts[i] < hi and starts[i + 1] > lo]
        written = math.exp(min(sum(tokens[i].logprob for i in covering), 0.0))
        chances[name] = chances.get(name, 0.0) + written
        first = covering[0]
        prefix = text[starts[first] : lo]  # what the first token writes before the name
        for alternative, logprob in tokens[first].top:
            if alternative == tokens[first].token or not alternative.startswith(prefix):
                continue
            other = named_by(alternative[len(prefix) :], names)
            if other is not None:
                chances[other] = chances.get(other, 0.0) + math.exp(min(logprob, 0.0))
    return {name: min(chance, 1.0) for name, chance in chances.items()}


def label_slots(text: str) -> list[tuple[int, int]]:
    """(start, end) of every label name written in the answer's "labels" list, in order."""
    key = _LABELS_KEY_RE.search(text)
    if key is None:
        return []
    end = _closing_bracket(text, key.end() - 1)
    return [m.span(1) for m in _LABEL_VALUE_RE.finditer(text, key.end(), end)]


def named_by(piece: str, names: Sequence[str]) -> str | None:
    """The label a token's text starts to write: a whole name (up to a closing quote), else
    the one name it begins; None when it begins several or none."""
    if not piece:
        return None
    whole = piece.split('"', 1)[0] if '"' in piece else None
    if whole is not None:
        return whole if whole in names else None
    if piece in names:
        return piece
    matches = [n for n in names if n.startswith(piece)]
    return matches[0] if len(matches) == 1 else None


def _closing_bracket(text: str, start: int) -> int:
    """Index just past the `]` that closes the `[` at `start` (strings skipped), else the end."""
    depth, inside, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif inside:
            escaped = char == "\\"
            inside = char != '"'
        elif char == '"':
            inside = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(text)


def _decode(escaped: str) -> str | None:
    """The string a JSON string body spells (None if its escapes are broken)."""
    try:
        return str(json.loads(f'"{escaped}"'))
    except json.JSONDecodeError:
        return None
