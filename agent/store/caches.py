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
# An item (alias i) whose text has no vector under the model bound to the next `?`.
_UNCACHED = (
    "NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.model = ? AND e.text_hash = i.text_hash)"
)
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

    def count_missing_vectors(self, model: str) -> int:
        """How many distinct item texts have no vector under `model` yet."""
        sql = f"SELECT COUNT(DISTINCT i.text_hash) FROM items i WHERE {_UNCACHED}"
        return int(self._read(sql, (model,))[0][0])

    def missing_texts(self, model: str, after: str, limit: int) -> list[tuple[str, str]]:
        """One page of what embedding still has to do: (text hash, text) of item texts with no
        vector under `model`, hashes above `after` in hash order, at most `limit` of them.
        Paging by hash keeps memory to one page and stays correct while pages get cached."""
        sql = (
            f"SELECT i.text_hash, MIN(i.text) FROM items i WHERE i.text_hash > ? AND {_UNCACHED}"
            " GROUP BY i.text_hash ORDER BY i.text_hash LIMIT ?"
        )
        return [(str(h), str(t)) for h, t in self._read(sql, (after, model, limit))]

    def vectors_by_key(
        self, model: str, after: int, upto: int, limit: int
    ) -> list[tuple[int, bytes | None]]:
        """One page of the pool's vectors: (item key, float32 bytes, None if uncached) for the
        items with after < key <= upto, in key order, at most `limit` of them."""
        sql = (
            "SELECT i.key, e.vector FROM items i LEFT JOIN embeddings e"
            " ON e.model = ? AND e.text_hash = i.text_hash"
            " WHERE i.key > ? AND i.key <= ? ORDER BY i.key LIMIT ?"
        )
        rows = self._read(sql, (model, after, upto, limit))
        return [(int(k), None if v is None else bytes(v)) for k, v in rows]

    def put_vectors(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors (n, d) under (model, text hash) in one transaction."""
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._tx() as conn:
            conn.executemany(
                _PUT_VECTOR,
                [(model, h, data[i].tobytes()) for i, h in enumerate(hashes)],
            )

