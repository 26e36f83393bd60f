"""K-means cells of the pool: which items are alike, so that an answer's reach can be counted."""

from __future__ import annotations

import numpy as np


def kmeans_cells(vectors: np.ndarray, seed: int) -> np.ndarray:
    """K-means cell (n,) of every item of vectors (n, d): ~sqrt(n) cells, fitted on a sample
    of at most 50 items per cell for speed."""
    from sklearn.cluster import MiniBatchKMeans

    n = vectors.shape[0]
    k = int(min(max(2, np.sqrt(n)), 1000, n))
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(n, size=min(n, 50 * k), replace=False)]
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=4096).fit(sample)
    return np.asarray(km.predict(vectors), dtype=np.int64)
