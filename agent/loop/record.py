"""Recording human labels: one function for every front door (library, batch oracle, TUI).

A human decision is the label annotation plus the review done in the queue, written in one
store transaction, so a crash never leaves one without the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.errors import InputError
from agent.store.protocol import ProjectStore
from agent.types import Annotation, Kind, Source


@dataclass(frozen=True)
class HumanLabel:
    """One person's answer on one item: a label name, or None for "ambiguous / none fits"."""

    item_key: int
    label: str | None
    round: int = 0
    duration_ms: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def record_human_labels(store: ProjectStore, labels: Sequence[HumanLabel], actor: str) -> list[int]:
    """Validate and store the answers of `actor`; returns the annotation ids in order.

    A label outside the project's label set is refused before anything is written.
    """
    label_set = store.label_set
    for answer in labels:
        if answer.label is not None and answer.label not in label_set:
            raise InputError(f"label '{answer.label}' is not in the label set", field="label")
    annotations = [
        Annotation(
            answer.item_key,
            answer.label,
            Source.HUMAN,
            Kind.LABEL,
            actor=actor,
            round=answer.round,
            duration_ms=answer.duration_ms,
            meta=dict(answer.meta),
        )
        for answer in labels
    ]
    return store.record_human_labels(annotations, actor)


def human_label_count(store: ProjectStore) -> int:
    """Human labels ever given on the project (what a human budget counts)."""
    return store.count_annotations(source=Source.HUMAN.value, kind=Kind.LABEL.value)
