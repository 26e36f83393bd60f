"""The pool as arrays: every item's embedding and current label, rebuilt from the store.

The session works on positions 0..n-1 in input order; `keys[i]` maps a position back to the
store. Label columns are refreshed cheaply after each round; vectors are computed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.embed import Embedder, embed_items
from agent.embed.protocol import ChunkEmbedder
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import NO_LABEL, Item, LabelSet


@dataclass
class Pool:
    """Arrays over the n items of a project, in input order."""

    items: list[Item]
    keys: np.ndarray  # (n,) int64 store keys
    vectors: np.ndarray  # (n, d) float32, unit rows
    label_vectors: np.ndarray  # (C, d) float32, embedding of "name: description"
    labels: np.ndarray = field(init=False)  # (n,) int label index or NO_LABEL
    sources: np.ndarray = field(init=False)  # (n,) object: source of the current label or ""
    queued: np.ndarray = field(init=False)  # (n,) bool: in the review queue (pending or done)

    def __post_init__(self) -> None:
        n = len(self.items)
        self.labels = np.full(n, NO_LABEL, dtype=np.int64)
        self.sources = np.full(n, "", dtype=object)
        self.queued = np.zeros(n, dtype=bool)
        self._position = {int(k): i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def last_key(self) -> int:
        """The newest item's store key (0: empty): keys rise, so this names the pool's extent."""
        return int(self.keys[-1]) if len(self.keys) else 0

    def position(self, key: int) -> int:
        return self._position[key]

    def positions(self, keys: list[int]) -> np.ndarray:
        return np.fromiter((self._position[k] for k in keys), dtype=np.int64, count=len(keys))

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
        for key, current in current_labels(store).items():
            i = self._position.get(key)
            if i is None:
                continue
            self.sources[i] = current.source
            if current.label is not None and current.label in label_set:
                self.labels[i] = label_set.index(current.label)
        self.queued[:] = False
        queued = [self._position[k] for k in store.queued_keys() if k in self._position]
        self.queued[queued] = True


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
    """Load every item, embed what is not cached yet (on `engine`: default here), embed the
    label descriptions (here: a few texts)."""
    items = store.items()
    vectors = embed_items(
        items, embedder, store, batch_size=batch_size, progress=progress, engine=engine
    )
    label_vectors = embedder.encode(label_texts(store.label_set), batch_size=batch_size)
    keys = np.fromiter((it.key for it in items), dtype=np.int64, count=len(items))
    pool = Pool(items, keys, vectors.astype(np.float32, copy=False), label_vectors)
    pool.refresh(store, store.label_set)
    return pool
