"""One record per item, in input order: the answer the project stands behind and its evidence.

The export's rows and `LabelingSession.results()` are these records, so a batch user and a
pipeline read the same columns (documented in the README's "Export columns"):

- the answer: `final_label`, `label_status` (human, auto, suggested, none), `final_source`
  (human, llm, classifier, zero-shot, combined), `final_confidence`;
- the label annotation behind it, if any: `label`, `source`, `confidence`, `actor`, `round`,
  `prompt_hash`, `labelled_at`, the reviewer's `answer_kind` (label, none_fits) and `note`;
- the machines' views: `llm_label`, `llm_confidence`, `llm_rationale`, `classifier_label`,
  `classifier_confidence`, and `queue_reason` (why the item went to the review queue).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from agent.routing.final_answer import final_answer
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import CurrentLabel, QueueView, Source

COLUMNS = [
    "id",
    "text",
    "final_label",
    "label_status",
    "final_source",
    "final_confidence",
    "label",
    "source",
    "confidence",
    "actor",
    "round",
    "prompt_hash",
    "labelled_at",
    "answer_kind",
    "note",
    "queue_reason",
    "llm_label",
    "llm_confidence",
    "llm_rationale",
    "classifier_label",
    "classifier_confidence",
]
FLOAT_COLUMNS = ("final_confidence", "confidence", "llm_confidence", "classifier_confidence")
INT_COLUMNS = ("round",)


def result_records(
    store: ProjectStore, guesses: Mapping[int, QueueView] | None = None
) -> Iterator[dict[str, Any]]:
    """Every item's record (see the module docstring), in input order. `guesses` (item key
    -> a pending view with a suggestion) stand in for the queue rows of items never queued:
    a library session's best guesses before any job ran; they leave `queue_reason` empty."""
    labels = current_labels(store)
    queue = store.queue_views()
    guesses = guesses or {}
    llm_votes = store.latest_votes(Source.LLM.value)
    model_votes = store.latest_votes(Source.MODEL.value)
    for batch in store.iter_items():
        for item in batch:
            label, queued = labels.get(item.key), queue.get(item.key)
            view = queued if queued is not None else guesses.get(item.key)
            record: dict[str, Any] = dict.fromkeys(COLUMNS, None)
            record.update(id=item.id, text=item.text)
            _add_answer(record, label, view)
            _add_label(record, label)
            _add_llm(record, llm_votes.get(item.key))
            _add_classifier(record, label, view, model_votes.get(item.key))
            record["queue_reason"] = queued.reason if queued is not None else None
            yield record


def _add_answer(
    record: dict[str, Any], label: CurrentLabel | None, queued: QueueView | None
) -> None:
    answer = final_answer(label, queued)
    record.update(
        final_label=answer.label, label_status=answer.status, final_source=answer.source,
        final_confidence=answer.confidence,
    )


def _add_label(record: dict[str, Any], label: CurrentLabel | None) -> None:
    record["label"] = ""
    if label is None:
        return
    record.update(
        label=label.label or "",
        source=label.source,
        confidence=label.confidence,
        actor=label.actor,
        round=label.round,
        prompt_hash=label.prompt_hash or None,
        labelled_at=_iso(label.created_at),
        note=label.note or None,
    )
    if label.source in HUMAN_SOURCES:
        record["answer_kind"] = "label" if label.label is not None else "none_fits"


def _add_llm(record: dict[str, Any], vote: dict[str, Any] | None) -> None:
    if vote is not None:
        record.update(
            llm_label=vote["label"], llm_confidence=vote["confidence"],
            llm_rationale=vote["rationale"],
        )


def _add_classifier(
    record: dict[str, Any], label: CurrentLabel | None, queued: QueueView | None,
    vote: dict[str, Any] | None,
) -> None:
    """The classifier's newest view: the queue's (refreshed after each retrain), else its
    accepted label, else its vote when the item was routed."""
    top = (queued.suggestion.get("classifier") or []) if queued is not None else []
    if top:
        record.update(classifier_label=top[0][0], classifier_confidence=top[0][1])
    elif label is not None and label.source == Source.MODEL.value:
        record.update(classifier_label=label.label, classifier_confidence=label.confidence)
    elif vote is not None and vote.get("actor") == "committee":
        record.update(classifier_label=vote["label"], classifier_confidence=vote["confidence"])


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")
