"""Human verdicts on machine votes: what the machines said about an item before a person did.

Each human label is paired with the newest LLM and classifier votes cast on the same item
*before* it, and with why the item was routed to a person. Audits (a random slice of would-be
auto-accepts) give unbiased precision evidence; other reviews give calibration evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.store.protocol import ProjectStore
from agent.types import NO_LABEL, LabelSet


@dataclass(frozen=True)
class Verdicts:
    """Arrays (m,) over the m items a human labelled after the machines voted on them."""

    item_keys: np.ndarray
    human: np.ndarray  # label index given by the human
    llm: np.ndarray  # LLM label index, NO_LABEL if no vote or abstain
    llm_conf: np.ndarray  # NaN where no LLM vote
    model: np.ndarray  # classifier label index, NO_LABEL if no vote
    model_conf: np.ndarray
    reason: np.ndarray  # object: why the item went to a person ('audit', 'disagree', ...)
    stage: np.ndarray  # object: 'route' (a round), 'final' or 'final_rest' (the final pass)
    eligible: np.ndarray  # bool: cleared the auto-accept thresholds when it was routed

    def __len__(self) -> int:
        return int(self.item_keys.size)

    def where(self, mask: np.ndarray) -> Verdicts:
        return Verdicts(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def collect_verdicts(store: ProjectStore, label_set: LabelSet) -> Verdicts:
    """Pair every standing human label with the machines' votes cast before it."""
    votes: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in store.annotations(kind="vote"):
        votes.setdefault((row["item_key"], row["source"]), []).append(row)
    rows = []
    for human in _latest_human_labels(store):
        if human["label"] is None or human["label"] not in label_set:
            continue
        llm = _vote_before(votes.get((human["item_key"], "llm"), []), human["id"])
        model = _vote_before(votes.get((human["item_key"], "model"), []), human["id"])
        if llm is None and model is None:
            continue  # a human label with no machine vote before it says nothing about them
        vote_meta = json.loads(model["meta"] or "{}") if model else {}
        rows.append(
            (
                human["item_key"],
                label_set.index(human["label"]),
                *_label_conf(llm, label_set),
                *_label_conf(model, label_set),
                vote_meta.get("reason", json.loads(human["meta"] or "{}").get("reason", "")),
                vote_meta.get("stage", "route"),
                bool(vote_meta.get("eligible", False)),
            )
        )
    return _to_arrays(rows)


def _latest_human_labels(store: ProjectStore) -> list[dict[str, Any]]:
    latest: dict[int, dict[str, Any]] = {}
    for row in store.annotations(source="human", kind="label"):
        latest[row["item_key"]] = row
    return list(latest.values())


def _vote_before(rows: list[dict[str, Any]], annotation_id: int) -> dict[str, Any] | None:
    earlier = [r for r in rows if r["id"] < annotation_id]
    return earlier[-1] if earlier else None


def _label_conf(vote: dict[str, Any] | None, label_set: LabelSet) -> tuple[int, float]:
    if vote is None or vote["label"] is None or vote["label"] not in label_set:
        return NO_LABEL, float("nan")
    return label_set.index(vote["label"]), float(vote["confidence"] or 0.0)


def _to_arrays(rows: list[tuple[Any, ...]]) -> Verdicts:
    columns = list(zip(*rows)) if rows else [()] * 9
    return Verdicts(
        np.asarray(columns[0], dtype=np.int64),
        np.asarray(columns[1], dtype=np.int64),
        np.asarray(columns[2], dtype=np.int64),
        np.asarray(columns[3], dtype=np.float64),
        np.asarray(columns[4], dtype=np.int64),
        np.asarray(columns[5], dtype=np.float64),
        np.asarray(columns[6], dtype=object),
        np.asarray(columns[7], dtype=object),
        np.asarray(columns[8], dtype=bool),
    )
