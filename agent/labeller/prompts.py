"""Prompt templates (the text files in prompts/): loading, rendering and hashing.

Item texts are data, marked up by `agent.llm.item_markup` (delimited, entities escaped) so a
text can neither close its own delimiter nor open a fake one.
Templates use `string.Template` ($name) so that JSON braces in them need no escaping.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from agent.errors import ConfigError
from agent.llm.item_markup import ABSTAIN, escape_text, item_block
from agent.types import LabelSet

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PACKAGE_COPY = "agent.prompt_templates"  # where an installed wheel keeps a copy of prompts/
REQUIRED = {
    "system": (),
    "task": ("labels",),
    "few_shot": ("examples",),
    "item": ("item",),
    "batch": ("items",),
    "reask": ("error",),
}
_PLACEHOLDERS = {"labels", "abstain", "examples", "few_shot", "item", "items", "count", "error"}
# The rationale's part of the answer format in item.txt and batch.txt, left out of the rendered
# message when answers carry no rationale. Cut from the text rather than made a placeholder:
# the templates, and so the prompt hash that keys every cached answer, stay as they were.
RATIONALE_FORMAT = ', "rationale": "<short reason>"'


def find_prompt_dir() -> Path | Traversable:
    """prompts/ next to the agent package (a checkout), else the copy installed in the package."""
    here = Path(__file__).resolve().parents[2] / "prompts"
    if (here / "system.txt").is_file():
        return here
    try:
        copy = resources.files(PACKAGE_COPY)
    except ModuleNotFoundError:
        copy = resources.files("agent").joinpath("prompt_templates")
    if copy.joinpath("system.txt").is_file():
        return copy
    raise ConfigError(f"prompt templates not found in {here} nor in package {PACKAGE_COPY}")


@dataclass(frozen=True)
class PromptSet:
    """The six templates; `hash(label_set)` identifies them (plus the label set) in provenance."""

    system: str
    task: str
    few_shot: str
    item: str
    batch: str
    reask: str

    @classmethod
    def load(cls, folder: Path | Traversable | None = None) -> PromptSet:
        """Read `<name>.txt` for each template from `folder` (default: `find_prompt_dir()`)."""
        source = folder if folder is not None else find_prompt_dir()
        texts: dict[str, str] = {}
        for name in REQUIRED:
            entry = source.joinpath(f"{name}.txt")
            if not entry.is_file():
                raise ConfigError(f"missing prompt template {name}.txt", file=str(source))
            texts[name] = entry.read_text(encoding="utf-8")
        prompts = cls(**texts)
        prompts.check()
        return prompts

    def check(self) -> None:
        """ConfigError naming the template with an unknown, malformed or missing placeholder."""
        dummy = dict.fromkeys(_PLACEHOLDERS, "x")
        for name, needed in REQUIRED.items():
            text = getattr(self, name)
            try:
                Template(text).substitute(dummy)
            except (KeyError, ValueError) as exc:
                raise ConfigError(f"bad placeholder in {name}.txt: {exc}") from None
            for placeholder in needed:
                if f"${placeholder}" not in text and f"${{{placeholder}}}" not in text:
                    raise ConfigError(f"{name}.txt lacks the placeholder ${placeholder}")

    def hash(self, label_set: LabelSet) -> str:
        """sha256 of every template, the label set and the abstain token (16 hex digits)."""
        digest = hashlib.sha256()
        for f in fields(self):
            digest.update(f"{f.name}\0{getattr(self, f.name)}\0".encode())
        digest.update(json.dumps([label_set.to_json(), ABSTAIN]).encode())
        return digest.hexdigest()[:16]

    def system_message(self, label_set: LabelSet) -> str:
        """The fixed part of every call: role, injection rules, label set, output fields."""
        lines = [
            f"- {name}: {desc}" if desc else f"- {name}"
            for name, desc in zip(label_set.names, label_set.descriptions)
        ]
        task = Template(self.task).substitute(labels="\n".join(lines), abstain=ABSTAIN)
        return f"{self.system.strip()}\n\n{task.strip()}"

    def user_message(
        self,
        texts: Sequence[str],
        examples: Sequence[tuple[str, str]],
        *,
        rationale: bool = True,
    ) -> str:
        """One item (item.txt) or several numbered items (batch.txt), after the few-shot block;
        without a rationale in the answer format unless `rationale`."""
        shots = ""
        if examples:
            blocks = [
                f'<example label="{html.escape(label)}">\n{escape_text(text)}\n</example>'
                for text, label in examples
            ]
            shots = Template(self.few_shot).substitute(examples="\n".join(blocks)).strip()
        if len(texts) == 1:
            body = Template(self.item).substitute(
                few_shot=shots, item=item_block(1, texts[0]), abstain=ABSTAIN
            )
        else:
            items = "\n".join(item_block(n, text) for n, text in enumerate(texts, start=1))
            body = Template(self.batch).substitute(
                few_shot=shots, items=items, count=len(texts), abstain=ABSTAIN
            )
        if not rationale:
            body = body.replace(RATIONALE_FORMAT, "")
        return body.strip()

    def messages(
        self,
        label_set: LabelSet,
        texts: Sequence[str],
        examples: Sequence[tuple[str, str]],
        *,
        rationale: bool = True,
    ) -> list[dict[str, str]]:
        """The system + user messages of a first attempt."""
        user = self.user_message(texts, examples, rationale=rationale)
        return [
            {"role": "system", "content": self.system_message(label_set)},
            {"role": "user", "content": user},
        ]

    def reask_message(self, error: str) -> str:
        """The turn that feeds a validation error back to the model."""
        return Template(self.reask).substitute(error=error, abstain=ABSTAIN).strip()
