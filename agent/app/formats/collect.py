"""The export side: every item of a store as a `Task`, in input order, with its marks.

Per item: every standing label a person gave (reviews and corpus labels), the machine label it
carries if its label came from a machine, and the newest LLM and classifier votes (their
scores). Retracted annotations are left out, as everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

from agent.app.formats.model import Mark, Task
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import Kind, Source


def collect_tasks(store: ProjectStore) -> Iterator[Task]:
    """One task per item, in input order."""
    current = current_labels(store)
    people: dict[int, list[Mark]] = {}
    for row in store.label_annotations(HUMAN_SOURCES):
        people.setdefault(row.item_key, []).append(
            Mark(row.label, row.source, Kind.LABEL.value, row.actor, row.confidence)
        )
    votes = {s: store.latest_votes(s) for s in (Source.LLM.value, Source.MODEL.value)}
    for batch in store.iter_items():
        for item in batch:
            marks = list(people.get(item.key, []))
            label = current.get(item.key)
            if label is not None and label.source not in HUMAN_SOURCES:
                marks.append(
                    Mark(label.label, label.source, Kind.LABEL.value, label.actor,
                         label.confidence)
                )  # fmt: skip
            for source, rows in votes.items():
                vote = rows.get(item.key)
                if vote is not None and vote["label"] is not None:
                    marks.append(
                        Mark(vote["label"], source, Kind.VOTE.value, vote["actor"] or "",
                             vote["confidence"])
                    )  # fmt: skip
            yield Task(item.id, item.text, marks)
