"""The engine of the pool-wide work: what the loop asks of it, whoever runs it.

Two jobs touch every row of the pool: embedding the texts the vector cache lacks, and scoring
the whole pool with the committee after each fit. An engine runs both as batch functions over
columns (`agent.embed.batch.embed_batch`, `agent.learn.pool_scores.score_batch`): the local
engine in this process, the Ray engine as Ray Data `map_batches` on a local Ray instance or a
cluster. Same functions, same blocks, same numbers; the store is only ever touched by the
caller's process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, Protocol

import numpy as np

from agent.embed.protocol import Embedder
from agent.learn.committee import Committee
from agent.learn.pool_scores import PoolScores

EngineName = Literal["local", "ray"]
ENGINES: tuple[EngineName, ...] = ("local", "ray")


class Engine(Protocol):
    """Runs embedding chunks and pool scoring; `close` frees what it started (a Ray instance)."""

    @property
    def name(self) -> str: ...

    def embed_chunks(
        self, embedder: Embedder, chunks: Iterable[Mapping[str, np.ndarray]], batch_size: int
    ) -> Iterator[Mapping[str, np.ndarray]]:
        """Vector chunks {"hash", "vector"} for text chunks {"hash", "text"}, in any order."""
        ...

    def score(
        self, committee: Committee, vectors: np.ndarray, label_vectors: np.ndarray
    ) -> PoolScores:
        """The committee's probabilities for every row of `vectors` (n, d)."""
        ...

    def close(self) -> None: ...
