"""The local engine: the pool-wide batch functions in this process, block after block."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from agent.embed.batch import InProcess
from agent.embed.protocol import Embedder
from agent.learn.committee import Committee
from agent.learn.pool_scores import PoolScores, blocks, collect_scores, score_batch


class LocalEngine:
    """Embeds and scores here; nothing to start or stop."""

    name = "local"

    def embed_chunks(
        self, embedder: Embedder, chunks: Iterable[Mapping[str, np.ndarray]], batch_size: int
    ) -> Iterator[Mapping[str, np.ndarray]]:
        return InProcess().embed_chunks(embedder, chunks, batch_size)

    def score(
        self, committee: Committee, vectors: np.ndarray, label_vectors: np.ndarray
    ) -> PoolScores:
        scored = (score_batch(block, committee, label_vectors) for block in blocks(vectors))
        return collect_scores(
            len(vectors), scored, committee.members_coef_.shape[0], committee.n_classes_
        )

    def close(self) -> None:
        pass
