"""Cards: a leased queue entry with its item, its ★ (the row's final answer) and its candidates.

The ★ is what every front door calls the row's answer (`agent.routing.final_answer`): a machine
label the item already carries (an audit of an auto-accepted or final-pass label), else the
queue's best guess. So Enter saves exactly the label the export would hand over, and the card
can say who proposed it and how sure the project is of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.routing.final_answer import FinalAnswer, final_answer
from agent.routing.sources import HUMAN_SOURCES, SOURCE_RANK
from agent.store.protocol import ProjectStore
from agent.types import CurrentLabel, Item, Kind, LabelSet, QueueEntry, QueueView

MAX_CANDIDATES = 9  # keys 1-9
FINAL_AUDIT_STAGE = "final_audit"  # meta stage of the vote `agent.loop.final.final_audit` records


@dataclass(frozen=True)
class Candidate:
    """A label the operator can pick by number, with the machines' support for it."""

    label: str
    llm_confidence: float | None  # set when this is the LLM's label
    probability: float | None  # set when the classifier ranks it in its top 3
    suggested: bool  # the ★ that Enter accepts


def candidates(
    suggestion: Mapping[str, Any], labels: LabelSet, star: str | None = None,
    limit: int = MAX_CANDIDATES,
) -> tuple[Candidate, ...]:
    """The ★ (default: the suggestion's best), then the LLM's label, then the classifier's top
    labels; known labels only, each once."""
    llm = suggestion.get("llm") or {}
    llm_label = llm.get("label")
    probs = {str(name): float(p) for name, p in suggestion.get("classifier") or []}
    star = suggestion.get("best") if star is None else star
    order: list[str] = []
    for name in (star, llm_label, *probs):
        if name and name in labels and name not in order:
            order.append(name)
    return tuple(
        Candidate(
            name,
            float(llm.get("confidence", 0.0)) if name == llm_label else None,
            probs.get(name),
            name == star,
        )
        for name in order[:limit]
    )


@dataclass
class Card:
    """One leased queue entry with its item, as shown to the operator."""

    entry: QueueEntry
    item: Item
    candidates: tuple[Candidate, ...]
    answer: FinalAnswer  # the ★: what Enter saves, with its source and P(right)
    accepted: CurrentLabel | None = None  # the machine label the item carries, if any
    final_audit: bool = False  # queued by the end-of-run accuracy audit
    note: str = ""
    earlier: str = ""  # the answer an undo took back, shown until the card is decided again
    shown_at: float = 0.0  # controller clock when it became the current card
    leased_at: float = 0.0  # controller clock of the last lease or renewal

    @property
    def key(self) -> int:
        return self.entry.item_key

    @property
    def best(self) -> str | None:
        """The ★ label (None: the machines have no guess)."""
        return self.answer.label


def machine_label(rows: Sequence[dict[str, Any]]) -> CurrentLabel | None:
    """The machine label an item carries, from its standing annotation rows: the highest
    source rank, then the newest (as `agent.routing.sources`). People's labels are left out:
    on an overlap item another operator's answer must not be offered as the ★."""
    labels = [r for r in rows if r["kind"] == Kind.LABEL.value
              and r["source"] not in HUMAN_SOURCES and r["label"] is not None]
    if not labels:
        return None
    row = max(labels, key=lambda r: (SOURCE_RANK.get(r["source"], 0), r["created_at"], r["id"]))
    return CurrentLabel(row["item_key"], row["label"], row["source"], row["confidence"],
                        row["actor"], row["round"], row["prompt_hash"], row["created_at"],
                        row["id"])


def is_final_audit(entry: QueueEntry, rows: Sequence[dict[str, Any]]) -> bool:
    """True when the entry's "audit" was queued by the end-of-run audit: that audit records a
    vote with stage `final_audit` in the same round as the entry (a round's audit records none)."""
    if entry.reason != "audit":
        return False
    return any(r["kind"] == Kind.VOTE.value and r["round"] == entry.round
               and json.loads(r["meta"] or "{}").get("stage") == FINAL_AUDIT_STAGE for r in rows)


def make_card(store: ProjectStore, entry: QueueEntry, item: Item, now: float) -> Card:
    """A card with its ★ worked out from the item's annotations (a few rows, indexed)."""
    rows = store.annotations(item_key=entry.item_key)
    accepted = machine_label(rows)
    view = QueueView(entry.item_key, entry.reason, "pending", entry.suggestion)
    answer = final_answer(accepted, view)
    return Card(entry, item, candidates(entry.suggestion, store.label_set, answer.label),
                answer, accepted, is_final_audit(entry, rows), leased_at=now)
