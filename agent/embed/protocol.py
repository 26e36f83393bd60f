"""The protocols of embedding: an Embedder (texts -> unit vectors), a VectorCache, and a
ChunkEmbedder (where chunks of texts are embedded: this process, or Ray workers).

An embedder is a pure batch function texts (n,) -> vectors (n, d) float32, L2-normalised, with
no global state and no store, so that a Ray Data `map_batches` worker (or a later ONNX int8 or
static embedder) can stand in for it. The cache persists vectors keyed by (embedder name, text
hash); the project Store satisfies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Maps texts to unit vectors. `name` keys the cache, so it must identify the model."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors (len(texts), dim) float32, each of L2 norm 1, in the order of `texts`."""
        ...


class VectorCache(Protocol):
    """Where vectors persist between runs (the project Store satisfies it)."""

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_vectors(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None: ...


class ChunkEmbedder(Protocol):
    """Where chunks of texts are embedded: in this process or on a cluster (agent/batch/).

    Takes text chunks {"hash" (b,), "text" (b,)} and yields vector chunks {"hash" (b,),
    "vector" (b, d)} (see agent.embed.batch), in any order; the caller caches each as it comes.
    """

    def embed_chunks(
        self, embedder: Embedder, chunks: Iterable[Mapping[str, np.ndarray]], batch_size: int
    ) -> Iterator[Mapping[str, np.ndarray]]: ...
