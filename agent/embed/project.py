"""A whole project's vectors, streamed through its store: memory grows with rows only by the
(n,) keys and the (n, d) float32 vectors, never by a Python object or a text per item.

Two passes, each a page at a time. First, the texts the vector cache lacks are read in pages
(by text hash), embedded in chunks on the engine and cached as each chunk is done (a kill
loses at most one chunk; identical texts are embedded once). Then the vectors are read in key
order straight into one preallocated array. `embed_items` (agent.embed.cache) stays the tool
for a list of items in hand (evals, benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import numpy as np

from agent.embed.batch import InProcess, text_chunk
from agent.embed.cache import mixed_widths, progress_bar
from agent.embed.protocol import ChunkEmbedder, Embedder, VectorCache
from agent.errors import EmbeddingError

PAGE = 8_192  # rows per store read: a few MB of texts or vectors at a time


class ProjectVectors(VectorCache, Protocol):
    """What streaming a project's vectors needs from its store (the project Store has it)."""

    def count_items(self) -> int: ...

    def last_item_key(self) -> int: ...

    def count_missing_vectors(self, model: str) -> int: ...

    def missing_texts(self, model: str, after: str, limit: int) -> list[tuple[str, str]]: ...

    def vectors_by_key(
        self, model: str, after: int, upto: int, limit: int
    ) -> list[tuple[int, bytes | None]]: ...


def embed_project(
    store: ProjectVectors,
    embedder: Embedder,
    batch_size: int = 64,
    progress: bool = False,
    engine: ChunkEmbedder | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(keys (n,) int64 ascending, vectors (n, d) float32) for every item now in the project,
    embedding (and caching) only the texts the cache lacks."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    upto = store.last_item_key()  # first: items added later get higher keys and wait
    room = store.count_items()  # at least the items up to `upto`
    embed_missing(store, embedder, batch_size, progress, engine)
    return read_vectors(store, embedder, upto, room)


def embed_missing(
    store: ProjectVectors,
    embedder: Embedder,
    batch_size: int,
    progress: bool,
    engine: ChunkEmbedder | None = None,
) -> int:
    """Embed and cache every item text with no vector under the embedder; how many."""
    total = store.count_missing_vectors(embedder.name)
    if total == 0:
        return 0
    engine = engine or InProcess()
    chunk_size = 16 * batch_size
    with progress_bar(total, embedder.name, enabled=progress) as bar:
        for done in engine.embed_chunks(
            embedder, _missing_chunks(store, embedder.name, chunk_size), batch_size
        ):
            hashes = [str(h) for h in done["hash"]]
            store.put_vectors(embedder.name, hashes, np.asarray(done["vector"]))
            bar(len(hashes))
    return total


def _missing_chunks(
    store: ProjectVectors, model: str, chunk_size: int
) -> Iterator[Mapping[str, np.ndarray]]:
    """Text chunks of what the cache lacks, a page at a time; each page longest first, as
    sentence-transformers orders a batch, so chunks pad little."""
    after = ""
    while page := store.missing_texts(model, after, max(PAGE, chunk_size)):
        after = page[-1][0]
        page.sort(key=lambda row: -len(row[1]))
        for start in range(0, len(page), chunk_size):
            rows = page[start : start + chunk_size]
            yield text_chunk([h for h, _ in rows], [t for _, t in rows])


def read_vectors(
    store: ProjectVectors, embedder: Embedder, upto: int, room: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys and vectors of the items with key <= upto, read a page at a time into arrays of
    `room` rows (grown if need be, trimmed to what was read)."""
    keys = np.empty(room, dtype=np.int64)
    vectors = np.empty((room, 0), dtype=np.float32)
    filled, after = 0, 0
    while page := store.vectors_by_key(embedder.name, after, upto, PAGE):
        block = _page_vectors(page, embedder.name)
        if filled == 0:
            vectors = np.empty((max(room, len(block)), block.shape[1]), dtype=np.float32)
        elif block.shape[1] != vectors.shape[1]:
            raise mixed_widths(embedder.name, {block.shape[1], vectors.shape[1]})
        if filled + len(block) > len(vectors):  # only if rows appeared below `upto` meanwhile
            vectors = np.concatenate([vectors[:filled], block])
            keys = np.resize(keys, len(vectors))
        else:
            vectors[filled : filled + len(block)] = block
        keys[filled : filled + len(block)] = [key for key, _ in page]
        filled += len(block)
        after = page[-1][0]
    if filled == 0:
        return keys[:0], np.zeros((0, embedder.dim), dtype=np.float32)
    return keys[:filled], vectors[:filled]


def _page_vectors(page: list[tuple[int, bytes | None]], model: str) -> np.ndarray:
    """One page's vectors (b, d) float32; an uncached item or a width mix is refused."""
    blobs = []
    for key, blob in page:
        if blob is None:
            raise EmbeddingError(
                f"item {key} has no cached vector for model '{model}' after embedding; "
                "run again (the cache may have been cleared meanwhile)"
            )
        blobs.append(blob)
    widths = {len(b) // 4 for b in blobs}
    if len(widths) > 1:
        raise mixed_widths(model, widths)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), widths.pop())
