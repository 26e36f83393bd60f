"""`LabelingSession`: the loop's state plus the verbs a pipeline (or the review TUI) calls.

In the spirit of small-text's `query()` / `update()` pair: ask what is worth a look, give
answers, retrain, read predictions. Rounds, the final pass and the batch job work on the
state underneath (`LoopState`), never on the session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import ProjectConfig
from agent.errors import InputError
from agent.loop.record import HumanLabel, record_human_labels
from agent.loop.rounds import refresh_queue
from agent.loop.state import LoopState, Scores
from agent.routing.accuracy import store_estimate
from agent.store.sqlite import Store
from agent.types import NO_LABEL, Item, LabelSet

__all__ = ["LabelingSession", "Scores"]


class LabelingSession(LoopState):
    """Active labelling over one store; see the module docstring."""

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, **kwargs: Any) -> LabelingSession:
        config = kwargs.pop("config", None) or ProjectConfig.load(folder)
        return cls(Store.open(folder), config, **kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        labels: LabelSet | Sequence[str],
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> LabelingSession:
        """An in-memory session for a library user with a list of texts and a label set."""
        label_set = labels if isinstance(labels, LabelSet) else LabelSet(tuple(labels))
        store = Store.memory(label_set)
        row_ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
        if len(row_ids) != len(texts):
            raise InputError(f"{len(row_ids)} ids for {len(texts)} texts", field="ids")
        store.add_items(((i, t, None) for i, t in zip(row_ids, texts)), source_file="<memory>")
        return cls(store, **kwargs)

    def close(self) -> None:
        self.store.close()

    # ---- library verbs -------------------------------------------------------------------
    def query(self, n: int | None = None, strategy: str | None = None) -> list[Item]:
        """The n items most worth a look now (active selection over the candidates)."""
        positions = self.select_positions(n or self.config.batch_size, strategy)
        return [self.pool.items[i] for i in positions]

    def submit(
        self,
        answers: Mapping[str, str | None],
        actor: str = "library",
        round_no: int = 0,
    ) -> int:
        """Record human labels given by external id; returns how many were stored."""
        by_id = {item.id: item for item in self.pool.items}
        unknown = next((ext_id for ext_id in answers if ext_id not in by_id), None)
        if unknown is not None:
            raise InputError(f"unknown item id '{unknown}'", field="id")
        labels = [HumanLabel(by_id[i].key, label, round_no) for i, label in answers.items()]
        stored = record_human_labels(self.store, labels, actor)
        self.reload_labels()
        return len(stored)

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """Best label index (n,) and its probability (n,): the current label, else the model's."""
        probs = self.scores.probs
        best = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        labelled = self.pool.labels != NO_LABEL
        best[labelled] = self.pool.labels[labelled]
        conf[labelled] = 1.0
        return best, conf

    # ---- services for the review TUI -----------------------------------------------------
    def refresh(self) -> None:
        """Retrain on the newest human labels and rewrite the pending queue's suggestions."""
        self.reload_labels()
        self.retrain()
        refresh_queue(self)
        store_estimate(self.store, self.config.routing, self.verdicts())

    def neighbours(self, item_key: int, k: int = 5) -> list[tuple[str, str, float]]:
        """The k most similar labelled items: (text, label, cosine similarity)."""
        pool = self.pool
        labelled = np.flatnonzero(pool.labels != NO_LABEL)
        if labelled.size == 0:
            return []
        sims = pool.vectors[labelled] @ pool.vectors[pool.position(item_key)]
        order = np.argsort(-sims)[:k]
        return [
            (pool.items[i].text, self.label_set.names[pool.labels[i]], float(sim))
            for i, sim in zip(labelled[order], sims[order])
        ]
