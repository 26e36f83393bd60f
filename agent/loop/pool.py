"""The pool as arrays: every item's embedding and current label, rebuilt from the store.

The session works on positions 0..n-1 in input order; `keys[i]` maps a position back to the
store. Label columns are refreshed cheaply after each round; vectors are computed once. Texts
stay in the store and are read by key when a batch needs them (prompts, review, few-shot), so
memory grows with rows only through these arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.embed import Embedder
from agent.embed.project import embed_project
from agent.embed.protocol import ChunkEmbedder
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import NO_LABEL, LabelSet


@dataclass
class Pool:
    """Arrays over the n items of a project, in input order."""

    keys: np.ndarray  # (n,) int64 store keys, ascending
    vectors: np.ndarray  # (n, d) float32, unit rows
    label_vectors: np.ndarray  # (C, d) float32, embedding of "name: description"
    labels: np.ndarray = field(init=False)  # (n,) int label index or NO_LABEL
    sources: np.ndarray = field(init=False)  # (n,) object: source of the current label or ""
    queued: np.ndarray = field(init=False)  # (n,) bool: in the review queue (pending or done)

    def __post_init__(self) -> None:
        n = len(self.keys)
        self.labels = np.full(n, NO_LABEL, dtype=np.int64)
        self.sources = np.full(n, "", dtype=object)
        self.queued = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def last_key(self) -> int:
        """The newest item's store key (0: empty): keys rise, so this names the pool's extent."""
        return int(self.keys[-1]) if len(self.keys) else 0

    def find(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        """Positions (m,) of store keys, -1 where a key is not in the pool (keys ascend, so a
        binary search: no per-item dict)."""
        wanted = np.asarray(keys, dtype=np.int64)
        if len(self.keys) == 0:
            return np.full(wanted.shape, -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        return np.where(self.keys[at] == wanted, at, -1)

    def position(self, key: int) -> int:
        return int(self.positions([key])[0])

    def positions(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        """Positions (m,) of store keys that must all be in the pool (KeyError if not)."""
        found = self.find(keys)
        if (found < 0).any():
            raise KeyError(int(np.asarray(keys)[np.argmax(found < 0)]))
        return found

    @property
    def human_mask(self) -> np.ndarray:
        """Items whose label comes from a person (human review or imported gold)."""
        return np.isin(self.sources, HUMAN_SOURCES) & (self.labels != NO_LABEL)

    @property
    def unlabelled_mask(self) -> np.ndarray:
        return self.labels == NO_LABEL

    def refresh(self, store: ProjectStore, label_set: LabelSet) -> None:
        """Re-read current labels and the queue from the store (cheap: no embedding)."""
        self.labels[:] = NO_LABEL
        self.sources[:] = ""
        currents = current_labels(store)
        at = self.find(list(currents))
        for i, current in zip(at, currents.values(), strict=True):
            if i < 0:
                continue
            self.sources[i] = current.source
            if current.label is not None and current.label in label_set:
                self.labels[i] = label_set.index(current.label)
        self.queued[:] = False
        queued = self.find(list(store.queued_keys()))
        self.queued[queued[queued >= 0]] = True


def label_texts(label_set: LabelSet) -> list[str]:
    """What the zero-shot member embeds for each label: its name, plus its description."""
    out = []
    for name, description in zip(label_set.names, label_set.descriptions):
        readable = name.replace("_", " ")
        out.append(f"{readable}: {description}" if description else readable)
    return out


def build_pool(
    store: ProjectStore,
    embedder: Embedder,
    batch_size: int,
    progress: bool,
    engine: ChunkEmbedder | None = None,
) -> Pool:
    """Every item's key and vector, embedding what is not cached yet (on `engine`: default
    here) page by page; and the label descriptions' vectors (here: a few texts)."""
    keys, vectors = embed_project(
        store, embedder, batch_size=batch_size, progress=progress, engine=engine
    )
    label_vectors = embedder.encode(label_texts(store.label_set), batch_size=batch_size)
    pool = Pool(keys, vectors, label_vectors)
    pool.refresh(store, store.label_set)
    return pool
