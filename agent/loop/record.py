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
from agent.types import (
    Annotation,
    Kind,
    LabelSet,
    Source,
    decode_label_set,
    encode_label_set,
    label_set_problem,
)


@dataclass(frozen=True)
class HumanLabel:
    """One person's answer on one item: a label name, or None for "ambiguous / none fits"."""

    item_key: int
    label: str | None
    round: int = 0
    duration_ms: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def record_human_labels(
    store: ProjectStore, labels: Sequence[HumanLabel], actor: str, *, sets: bool = False
) -> list[int]:
    """Validate and store the answers of `actor`; returns the annotation ids in order.

    A label outside the project's label set is refused before anything is written; with
    `sets` (a multi-label project) each label is a set's canonical text, and anything else is
    refused the same way.
    """
    label_set = store.label_set
    for answer in labels:
        if answer.label is None:
            continue
        problem = _set_problem(answer.label, label_set) if sets else (
            "" if answer.label in label_set else "is not in the label set")  # fmt: skip
        if problem:
            raise InputError(f"label '{answer.label}' {problem}", field="label")
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


def _set_problem(label: str, label_set: LabelSet) -> str:
    """Why `label` is not the canonical text of a set of the project ("" when it is)."""
    try:
        names = list(decode_label_set(label) or ())
    except ValueError:
        return "is not a label set"
    problem = label_set_problem(names, label_set)
    if problem:
        return f"is not a valid label set ({problem})"
    return "" if encode_label_set(names, label_set) == label else "is not in canonical form"


def human_label_count(store: ProjectStore) -> int:
    """Human labels ever given on the project (what a human budget counts)."""
    return store.count_annotations(source=Source.HUMAN.value, kind=Kind.LABEL.value)
