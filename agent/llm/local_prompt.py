"""The short completion-style prompt a small local model scores labels on.

A 135M-parameter model does not follow the labeller's chat prompt (rules, JSON format): scored
after it, SmolLM2 said "spam" for 83 % of 60 SMS (sms_spam accuracy 0.17 to 0.30). So the local
backend reads the parts back out of the messages (the label lines, the `<example>` blocks, the
`<item>` text; `item_markup` is the contract) and writes the classic few-shot layout:

    Classify each text as one of these labels:
    - spam: SMS spam message
    ...
    Text: <example>
    Label: spam

    Text: <item>
    Label:

The candidate continuations are " <label>" and a line end.
"""

from __future__ import annotations

import html
import re

from agent.llm.item_markup import find_items, unescape_text

_EXAMPLE_RE = re.compile(r'<example label="([^"]*)">\n(.*?)\n</example>', re.DOTALL)


def label_lines(
    messages: list[dict[str, str]], labels: list[str], roles: tuple[str, ...] = ("system",)
) -> list[str]:
    """'- name: description' for each label, as the messages of `roles` list them (else the
    name): the single-label prompt lists them in the system message, the multi-label one in
    the user's."""
    text = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") in roles)
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, _, description = line.removeprefix("- ").partition(": ")
        if line.startswith("- ") and name.strip() in labels:
            found.setdefault(name.strip(), description.strip())
    return [f"- {n}: {found[n]}" if found.get(n) else f"- {n}" for n in labels]


def compact_prompt(
    messages: list[dict[str, str]], labels: list[str], item: str | None = None
) -> str | None:
    """The few-shot prompt for the (last) item of `messages`; `item` replaces its text (the
    content-free prompt uses "N/A"). None when the messages hold no item."""
    items = find_items(messages)
    if not items:
        return None
    text = item if item is not None else items[-1][1]
    body = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") != "system")
    shots = [
        f"Text: {_one_line(unescape_text(t))}\nLabel: {html.unescape(label)}\n"
        for label, t in _EXAMPLE_RE.findall(body)
    ]
    head = "Classify each text as one of these labels:\n" + "\n".join(label_lines(messages, labels))
    return f"{head}\n\n" + "\n".join(shots) + ("\n" if shots else "") + (
        f"Text: {_one_line(text)}\nLabel:"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())
