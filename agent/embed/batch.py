"""Embedding as a batch function over columns, the unit both engines run (agent/batch/).

A text chunk is the columns {"hash": (b,) str, "text": (b,) str}; `embed_batch` turns it into a
vector chunk {"hash": (b,), "vector": (b, d) float32}. The same function runs in this process
(`InProcess`, the default of `embed_items`) and in a Ray Data `map_batches` worker, so both
engines embed the same chunks the same way; the hash column keys the result, whatever order
the chunks come back in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from agent.embed.protocol import Embedder

Columns = Mapping[str, np.ndarray]


def text_chunk(hashes: list[str], texts: list[str]) -> dict[str, np.ndarray]:
    """The columns of one chunk of texts to embed: hash (b,) and text (b,), object arrays."""
    return {"hash": np.array(hashes, dtype=object), "text": np.array(texts, dtype=object)}


def embed_batch(batch: Columns, embedder: Embedder, batch_size: int) -> dict[str, np.ndarray]:
    """{"hash" (b,), "text" (b,)} -> {"hash" (b,), "vector" (b, d) float32 unit rows}."""
    texts = [str(t) for t in batch["text"]]
    vectors = np.asarray(embedder.encode(texts, batch_size=batch_size), dtype=np.float32)
    return {"hash": np.asarray(batch["hash"], dtype=object), "vector": vectors}


class InProcess:
    """The local engine's embedding: each chunk through `embed_batch`, here, in order."""

    name = "local"

    def embed_chunks(
        self, embedder: Embedder, chunks: Iterable[Columns], batch_size: int
    ) -> Iterator[dict[str, np.ndarray]]:
        for chunk in chunks:
            yield embed_batch(chunk, embedder, batch_size)
