"""How item texts sit inside a prompt, and the label value that means "cannot tell".

The contract between the labeller, which writes prompts, and the backends that read them (the
simulated and replay annotators, the test server). Each text sits between `<item n="k">` and
`</item>` with `&`, `<` and `>` written as entities, so a text can neither close its own
delimiter nor open a fake one; `extract_items` inverts the rendering exactly. A text longer
than the configured limit is cut (`cut_text`) with a visible marker, the same way every time.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from agent.types import text_hash

V = TypeVar("V")

ABSTAIN = "__abstain__"  # the label value that means "cannot tell"; maps to LabelDecision None
_ITEM_RE = re.compile(r'<item n="(\d+)">\n(.*?)\n</item>', re.DOTALL)
_ENTITY_RE = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
CUT_MARKER = "… [cut: {rest:,} more characters]"
_CUT_RE = re.compile(r" … \[cut: [\d,]+ more characters\]\Z")
MIN_CUT_CHARS = 100  # the smallest limit a config allows (LLMConfig.max_text_chars)


def cut_text(text: str, max_chars: int | None) -> str:
    """`text` if it has at most `max_chars` characters, else its first `max_chars` and a marker
    naming how many more there were (`… [cut: 123,456 more characters]`). Deterministic, so
    the prompt, and the cache key of the answer, are the same on every run."""
    if max_chars is None or len(text) <= max_chars:
        return text
    return f"{text[:max_chars]} {CUT_MARKER.format(rest=len(text) - max_chars)}"


def cut_length(length: int, max_chars: int | None) -> int:
    """Characters of a text of `length` characters once `cut_text` has cut it."""
    if max_chars is None or length <= max_chars:
        return length
    return max_chars + 1 + len(CUT_MARKER.format(rest=length - max_chars))


def escape_text(text: str) -> str:
    """Neutralise delimiters inside a text: & < > become entities (reversible)."""
    return html.escape(text, quote=False)


def unescape_text(text: str) -> str:
    """Exact inverse of `escape_text` (only the three entities it writes are decoded)."""
    return _ENTITY_RE.sub(lambda m: _ENTITIES[m.group(1)], text)


def item_block(number: int, text: str) -> str:
    """One delimited item as the model sees it."""
    return f'<item n="{number}">\n{escape_text(text)}\n</item>'


def extract_items(message: str) -> list[tuple[int, str]]:
    """(number, original text) of every item block in a rendered user message, in order."""
    return [(int(m.group(1)), unescape_text(m.group(2))) for m in _ITEM_RE.finditer(message)]


def find_items(messages: Sequence[dict[str, str]]) -> list[tuple[int, str]]:
    """The items of the first user message that holds any (re-ask turns hold none)."""
    for message in messages:
        if message.get("role") == "user":
            found = extract_items(message.get("content") or "")
            if found:
                return found
    return []


def cut_limit(text: str) -> int | None:
    """The limit `cut_text` cut this prompt text at (None for a text it left whole)."""
    match = _CUT_RE.search(text)
    return match.start() if match else None


class PromptTexts(Generic[V]):
    """Values by text, found again from the text as a prompt holds it, whole or cut (for the
    evaluation annotators, which know the texts but not the labeller's limit)."""

    def __init__(self, pairs: Iterable[tuple[str, V]]) -> None:
        self._whole: dict[str, V] = {}
        self._long: list[tuple[str, V]] = []  # texts some limit may cut
        self._cut: dict[int, dict[str, V]] = {}  # limit -> hash of the cut text -> value
        for text, value in pairs:
            key = text_hash(text)
            if key not in self._whole:  # the first of repeated texts wins
                self._whole[key] = value
                if len(text) > MIN_CUT_CHARS:
                    self._long.append((text, value))

    def get(self, text: str) -> V | None:
        """The value of `text` (or of the text that `cut_text` cut to it); None if unknown."""
        key = text_hash(text)
        if key in self._whole:
            return self._whole[key]
        limit = cut_limit(text)
        if limit is None:
            return None
        if limit not in self._cut:
            self._cut[limit] = {}
            for whole, value in self._long:
                self._cut[limit].setdefault(text_hash(cut_text(whole, limit)), value)
        return self._cut[limit].get(key)
