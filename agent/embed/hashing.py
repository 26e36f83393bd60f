"""The hashing embedder: hashed word and character n-grams under a fixed seeded projection.

No model, no fitting and no download: fast on CPU for huge corpora and for tests of the loop
logic, though far weaker than a sentence encoder at meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

HASHING_NAME = "hashing"


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
