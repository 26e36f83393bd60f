"""The store's two caches: paid LLM replies and embedding vectors, both keyed by content.

Mixed into each store (over `SQLOps`); kept apart because they
hold derived data that can always be recomputed (at a price), unlike annotations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.store.sql import SQLOps, chunks, upsert

_CACHE_COLUMNS = (
    "key", "model", "payload", "prompt_tokens", "completion_tokens", "cost_usd", "created_at"
)  # fmt: skip
_PUT_REPLY = upsert("llm_cache", _CACHE_COLUMNS, ("key",))
_PUT_VECTOR = upsert("embeddings", ("model", "text_hash", "vector"), ("model", "text_hash"))


class CacheOps(SQLOps):
    """LLM reply cache and embedding cache operations."""

    # ---- LLM response cache --------------------------------------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT payload FROM llm_cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None  # type: ignore[no-any-return]

    def cache_put(
        self,
        key: str,
        model: str,
        payload: dict[str, Any],
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        """Record a paid reply the moment it arrives, so a crash never pays for it twice."""
        self.cache_put_many([(key, model, payload, prompt_tokens, completion_tokens, cost_usd)])

    def cache_put_many(
        self, rows: Sequence[tuple[str, str, dict[str, Any], int, int, float]]
    ) -> None:
        """Record several paid replies (key, model, payload, prompt/completion tokens, cost)
        in one transaction: one fsync for a burst of replies instead of one each."""
        now = time.time()
        with self._tx() as conn:
            conn.executemany(
                _PUT_REPLY,
                [(k, m, json.dumps(p), pt, ct, c, now) for k, m, p, pt, ct, c in rows],
            )

    def cache_totals(self) -> dict[str, float]:
        row = self._read(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0),"
            " COALESCE(SUM(cost_usd),0) FROM llm_cache"
        )[0]
        return {
            "calls": row[0],
            "prompt_tokens": row[1],
            "completion_tokens": row[2],
            "cost_usd": float(row[3]),
        }

    # ---- embedding cache -----------------------------------------------------------------
    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached float32 vectors (d,) by text hash; absent hashes are simply missing."""
        found: dict[str, np.ndarray] = {}
        for chunk in chunks(list(hashes), 900):
            marks = ",".join("?" * len(chunk))
            sql = "SELECT text_hash, vector FROM embeddings WHERE model = ? AND text_hash IN "
            rows = self._read(f"{sql}({marks})", [model, *chunk])
            found.update({h: np.frombuffer(v, dtype=np.float32) for h, v in rows})
        return found

    def put_vectors(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors (n, d) under (model, text hash) in one transaction."""
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._tx() as conn:
            conn.executemany(
                _PUT_VECTOR,
                [(model, h, data[i].tobytes()) for i, h in enumerate(hashes)],
            )

