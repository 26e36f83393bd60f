"""Cache-backed embedding of items: embed only what the project's vector cache lacks.

Vectors are keyed by (embedder name, text hash): identical texts are embedded once, nothing is
embedded twice across runs, and each finished chunk is cached at once, so a kill loses at most
one chunk. A rich progress bar on stderr reports the work. Where the chunks are embedded is a
ChunkEmbedder's business (this process by default; Ray workers with agent.batch's Ray engine);
the cache is written here, by the caller's process, either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from agent.embed.batch import InProcess, text_chunk
from agent.embed.protocol import ChunkEmbedder, Embedder, VectorCache
from agent.errors import EmbeddingError
from agent.types import Item


def embed_items(
    items: Sequence[Item],
    embedder: Embedder,
    cache: VectorCache,
    batch_size: int = 64,
    progress: bool = False,
    chunk_size: int | None = None,
    engine: ChunkEmbedder | None = None,
) -> np.ndarray:
    """Vectors (len(items), d) in the items' order, embedding only texts the cache lacks.

    Identical texts (same hash) are embedded once. Missing texts go longest first, as
    sentence-transformers orders a batch, in chunks of `chunk_size` (default 16 batches);
    each chunk is cached as soon as it is done, so a kill loses at most one chunk. `engine`
    embeds the chunks (default: here, in order); any engine gets the same chunks.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    texts = {item.text_hash: item.text for item in items}  # one text per hash, first seen
    found = cache.get_vectors(embedder.name, list(texts))
    missing = sorted((h for h in texts if h not in found), key=lambda h: -len(texts[h]))
    chunks = (
        text_chunk(chunk, [texts[h] for h in chunk])
        for chunk in _chunks(missing, chunk_size or 16 * batch_size)
    )
    engine = engine or InProcess()
    with progress_bar(len(missing), embedder.name, enabled=progress and bool(missing)) as bar:
        for done in engine.embed_chunks(embedder, chunks, batch_size):
            hashes = [str(h) for h in done["hash"]]
            cache.put_vectors(embedder.name, hashes, done["vector"])
            found.update(zip(hashes, done["vector"], strict=True))
            bar(len(hashes))
    return _assemble([item.text_hash for item in items], found, embedder)


def _assemble(
    hashes: Sequence[str], found: dict[str, np.ndarray], embedder: Embedder
) -> np.ndarray:
    """Stack vectors (n, d) by hash, refusing a cache whose vectors disagree on width."""
    if not hashes:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    widths = {len(found[h]) for h in hashes}
    if len(widths) > 1:
        raise mixed_widths(embedder.name, widths)
    out = np.empty((len(hashes), widths.pop()), dtype=np.float32)
    for row, h in enumerate(hashes):
        out[row] = found[h]
    return out


def mixed_widths(model: str, widths: set[int]) -> EmbeddingError:
    """The error for a cache whose vectors under one model name disagree on width."""
    return EmbeddingError(
        f"cached vectors for model '{model}' have mixed widths {sorted(widths)}; "
        "the model behind this name has changed; configure it under a new name"
    )


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextmanager
def progress_bar(total: int, model: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callable driving a rich bar on stderr (stdout stays clean for
    --json output); a no-op when disabled."""
    if not enabled:
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("embedding with [bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(model, total=total)
        yield lambda done: bar.advance(task, done)
