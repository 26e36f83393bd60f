"""How item texts sit inside a prompt, and the label value that means "cannot tell".

The contract between the labeller, which writes prompts, and the backends that read them (the
simulated and replay annotators, the test server). Each text sits between `<item n="k">` and
`</item>` with `&`, `<` and `>` written as entities, so a text can neither close its own
delimiter nor open a fake one; `extract_items` inverts the rendering exactly.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

ABSTAIN = "__abstain__"  # the label value that means "cannot tell"; maps to LabelDecision None
_ITEM_RE = re.compile(r'<item n="(\d+)">\n(.*?)\n</item>', re.DOTALL)
_ENTITY_RE = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}


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
