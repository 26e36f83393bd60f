"""What every interchange format carries: one task per item, the marks annotators left on it.

A `Mark` is one annotator's say on one item, with its provenance: who (source and actor), how
sure, and whether it is a final label or a vote (evidence). Format modules only translate
tasks to and from their JSON; `collect.py` builds tasks from a store, `apply.py` writes them
back. The provenance a format has no native slot for travels in two strings:

- a machine mark's agent (Label Studio `model_version`, Argilla suggestion `agent`, Prodigy
  `meta.agent`): ``labelagent.<source>.<kind>/<actor>``, e.g. ``labelagent.llm.vote/gpt-4o``;
  an agent written by another tool reads as a classifier vote by that agent;
- a person's name: the operator's own, or ``import:<actor>`` for labels that came with the
  corpus (source ``import``, not a review).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agent.types import Kind, Source

AGENT_PREFIX = "labelagent"
IMPORTED = "import:"  # a human-kind label that came with the corpus, not from a review
_AGENT = re.compile(r"^labelagent\.(\w+)\.(vote|label)/(.*)$", re.DOTALL)
MACHINE_SOURCES = (Source.LLM.value, Source.MODEL.value, Source.ZEROSHOT.value)


@dataclass(frozen=True)
class Mark:
    """One annotator's say on one item. `label` None: a person found that no label fits."""

    label: str | None
    source: str  # a Source value
    kind: str = Kind.LABEL.value  # 'label' (the item carries it) or 'vote' (evidence)
    actor: str = ""
    confidence: float | None = None

    @property
    def human(self) -> bool:
        return self.source in (Source.HUMAN.value, Source.IMPORT.value)


@dataclass
class Task:
    """One item as a tool sees it: its id, its text and every mark on it."""

    id: str
    text: Any  # as read: `apply.check_tasks` refuses anything but a usable string
    marks: list[Mark] = field(default_factory=list)
    record: int = 0  # 1-based record (or line) number in the file it was read from


def agent_name(mark: Mark) -> str:
    """The agent string of a machine mark (see the module docstring)."""
    return f"{AGENT_PREFIX}.{mark.source}.{mark.kind}/{mark.actor}"


def machine_mark(agent: str, label: str, score: float | None) -> Mark:
    """A machine mark read back from its agent string; another tool's agent is a model vote."""
    found = _AGENT.match(agent or "")
    if found and found.group(1) in MACHINE_SOURCES:
        return Mark(label, found.group(1), found.group(2), found.group(3), score)
    return Mark(label, Source.MODEL.value, Kind.VOTE.value, agent or "external", score)


def person_name(mark: Mark) -> str:
    """The name a person's mark goes out under (``import:<actor>`` for corpus labels)."""
    return f"{IMPORTED}{mark.actor}" if mark.source == Source.IMPORT.value else mark.actor


def person_mark(name: str, label: str | None) -> Mark:
    """A person's mark read back from the name it went out under."""
    if name.startswith(IMPORTED):
        return Mark(label, Source.IMPORT.value, Kind.LABEL.value, name[len(IMPORTED):], 1.0)
    return Mark(label, Source.HUMAN.value, Kind.LABEL.value, name)


def suggestion(marks: list[Mark]) -> Mark | None:
    """The one machine mark a format with a single suggestion slot shows: the item's machine
    label if it has one, else the LLM's vote, else the classifier's."""
    machine = [m for m in marks if not m.human and m.label is not None]
    order = {(Kind.LABEL.value, ""): 0, (Kind.VOTE.value, Source.LLM.value): 1}
    ranked = sorted(
        machine,
        key=lambda m: order.get((m.kind, "" if m.kind == Kind.LABEL.value else m.source), 2),
    )
    return ranked[0] if ranked else None
