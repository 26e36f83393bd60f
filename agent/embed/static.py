"""The static embedder: a model2vec model distilled once from a local sentence-transformers model.

Names: "static" is distilled from the bundled all-MiniLM-L6-v2; "<model folder>:static" from any
local mean-pooled model. Distillation (model2vec.distill: every vocabulary token through the
model, PCA to 256 dimensions, SIF weights) runs offline at first use, about half a minute on 2
cores, and is cached (see model_cache). Encoding is then a token-table lookup and a mean: tens
of times faster than the transformer, and weaker, so its downstream cost is measured in
evals/RESULTS.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.embed.model_cache import artifact_key, cached_artifact, require_packages
from agent.embed.source import SourceModel, source_model

if TYPE_CHECKING:
    from model2vec import StaticModel

VARIANT = "static"
PCA_DIMS = 256
RECIPE = f"static-pca{PCA_DIMS}-v1"  # change when the distillation settings change
BUILD_PACKAGES = ("torch", "transformers", "model2vec", "skeletoken", "tokenizers")


class StaticEmbedder:
    """Texts -> unit vectors (n, 256) from a distilled static token table."""

    def __init__(self, base: str | None = None) -> None:
        self.source: SourceModel = source_model(base, VARIANT)
        self._model: StaticModel | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.source.name}:{VARIANT}"

    @property
    def dim(self) -> int:
        return min(PCA_DIMS, self.source.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors (n, dim) float32, unit norm (a text with no known token stays zero). Batch
        size is moot for a table lookup; model2vec batches internally."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._loaded().encode(
            list(texts), max_length=self.source.max_seq_length, use_multiprocessing=False
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)

    def model_folder(self) -> Path:
        """The cached distilled model, distilling it if it is not there yet."""
        require_packages(f"embedder '{self.name}'", "model2vec", "skeletoken", "torch")
        key = artifact_key(RECIPE, self.source.path, BUILD_PACKAGES)
        return cached_artifact(key, lambda tmp: _distill(self.source, tmp))

    def _loaded(self) -> StaticModel:
        with self._lock:
            if self._model is None:
                from model2vec import StaticModel

                self._model = StaticModel.from_pretrained(self.model_folder(), normalize=True)
            return self._model

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only (cheap to ship to a worker); it reloads there."""
        return {"base": self.source.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"StaticEmbedder({self.source.name!r})"


def _distill(source: SourceModel, folder: Path) -> None:
    """Distil from the local folder (model2vec asks the hub nothing for a local path)."""
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    from agent.embed.transformer import quiet_weight_loading

    with quiet_weight_loading():
        model = AutoModel.from_pretrained(str(source.path), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(source.path), local_files_only=True)
    static = distill_from_model(
        model, tokenizer, device="cpu", pca_dims=PCA_DIMS  # type: ignore[arg-type]
    )
    static.save_pretrained(str(folder))
