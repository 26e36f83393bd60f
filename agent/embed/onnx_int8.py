"""The ONNX Runtime int8 embedder: a sentence-transformers model exported once, run without torch.

Names: "onnx-int8" is the bundled all-MiniLM-L6-v2; "<model folder>:onnx-int8" any local
mean-pooled sentence-transformers model. The int8 graph is built at first use and cached (see
model_cache); encoding reproduces sentence-transformers: the model's own tokenizer truncating at
its max_seq_length, masked mean pooling, L2 normalisation. Vectors differ slightly from the
torch model's (cosine about 0.99), so the cache key (`name`) differs too. The same texts in the
same order give the same vectors; a text in another batch moves slightly (cosine >= 0.99), as
int8 activations take one quantization scale per batch tensor.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.embed.model_cache import artifact_key, cached_artifact, require_packages
from agent.embed.source import SourceModel, source_model

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

VARIANT = "onnx-int8"
RECIPE_VERSION = "v1"  # bump when the export recipe changes, so old caches are not reused
BUILD_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime")


class OnnxInt8Embedder:
    """Texts -> unit vectors (n, hidden) through an int8 ONNX graph of a local model."""

    def __init__(self, base: str | None = None) -> None:
        self.source: SourceModel = source_model(base, VARIANT)
        self._session: InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.source.name}:{VARIANT}"

    @property
    def dim(self) -> int:
        return self.source.hidden_size

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors (n, dim) float32, unit norm; batches are formed longest first, as
        sentence-transformers does, so padding stays short."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        session, tokenizer = self._loaded()
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = _encode_batch(session, tokenizer, [texts[i] for i in rows])
        return out

    def model_file(self) -> str:
        """Path of the cached int8 graph, building it if it is not there yet."""
        from agent.embed.onnx_export import ONNX_FILE, export_int8

        require_packages(f"embedder '{self.name}'", "onnxruntime", "onnx", "torch")
        key = artifact_key(f"onnx-int8-{RECIPE_VERSION}", self.source.path, BUILD_PACKAGES)
        folder = cached_artifact(key, lambda tmp: export_int8(self.source, tmp))
        return str(folder / ONNX_FILE)

    def _loaded(self) -> tuple[InferenceSession, Tokenizer]:
        with self._lock:
            if self._session is None or self._tokenizer is None:
                self._session = _session(self.model_file())
                self._tokenizer = _tokenizer(self.source)
            return self._session, self._tokenizer

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only (cheap to ship to a worker); it reloads there."""
        return {"base": self.source.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"OnnxInt8Embedder({self.source.name!r})"


def _session(path: str) -> InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _tokenizer(source: SourceModel) -> Tokenizer:
    """The model's own fast tokenizer, truncating where sentence-transformers does and padding
    each batch to its longest text (tokenizer.json ships a fixed 128 for both)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source.path / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=source.max_seq_length)
    pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
    pad_token = tokenizer.padding["pad_token"] if tokenizer.padding else "[PAD]"
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def _encode_batch(session: InferenceSession, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """One batch: token ids -> hidden states (b, s, h) -> masked mean (b, h) -> unit rows."""
    encodings = tokenizer.encode_batch(texts)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": mask,
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    wanted = {i.name for i in session.get_inputs()}
    hidden = session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
