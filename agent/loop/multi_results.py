"""The records of a multi-label project, one per item in input order: its final set (a list),
whose it is (`label_status`: human, auto, suggested, none), and the evidence behind it. The
export, `status` and `LabelingSession.results()` all read these."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import decode_label_set

COLUMNS = ("id", "text", "final_labels", "label_status", "final_source", "final_confidence",
           "queue_reason", "doubt", "llm_labels")  # fmt: skip
LIST_COLUMNS = ("final_labels", "doubt", "llm_labels")
_SOURCE_NAMES = {"model": "classifier"}


def set_records(store: ProjectStore) -> Iterator[dict[str, Any]]:
    """One dict per item in input order (lists for the set columns)."""
    currents = current_labels(store)
    views = store.queue_views()
    llm = store.latest_votes("llm")
    for batch in store.iter_items():
        for item in batch:
            current, view = currents.get(item.key), views.get(item.key)
            record: dict[str, Any] = {"id": item.id, "text": item.text, "final_labels": [],
                                      "label_status": "none", "final_source": "",
                                      "final_confidence": None}  # fmt: skip
            if current is not None and current.label is not None:
                human = current.source in HUMAN_SOURCES
                record.update(final_labels=list(decode_label_set(current.label) or ()),
                              label_status="human" if human else "auto",
                              final_source=_SOURCE_NAMES.get(current.source, current.source),
                              final_confidence=1.0 if human else current.confidence)  # fmt: skip
            elif view is not None and view.suggestion.get("labels"):
                s = view.suggestion
                record.update(final_labels=list(s["labels"]), label_status="suggested",
                              final_source=s.get("source", ""),
                              final_confidence=s.get("p_right"))  # fmt: skip
            record["queue_reason"] = view.reason if view is not None else ""
            record["doubt"] = sorted(view.suggestion.get("doubt", {})) if view else []
            vote = llm.get(item.key)
            record["llm_labels"] = list(decode_label_set(vote["label"]) or ()) if vote else []
            yield record
