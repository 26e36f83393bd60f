"""LLM calls that failed after their retries, per item: an append-only log read against votes.

Mixed into each store (over `SQLOps`). A failure row keeps the newest
annotation id at the moment it was written (`watermark`), so "the item's latest LLM attempt
failed" is simply "no LLM vote with a larger id": nothing is ever updated or deleted, and a
vote that lands later (the next run asked again) ends the failure by itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from agent.store.sql import SQLOps

# Per item, its newest failure; kept only while no LLM vote is newer than it.
_OPEN_FAILURES_SQL = """
    SELECT f.item_key, f.error, f.created_at FROM llm_failures f
    JOIN (SELECT item_key, MAX(id) AS id FROM llm_failures GROUP BY item_key) last
      ON last.id = f.id
    WHERE NOT EXISTS (
        SELECT 1 FROM annotations a
        WHERE a.item_key = f.item_key AND a.source = 'llm' AND a.kind = 'vote'
          AND a.id > f.watermark
    )
"""


class FailureOps(SQLOps):
    """Failed LLM calls: record them, and read the items still waiting for an answer."""

    def record_llm_failures(
        self, errors: Mapping[int, str], *, model: str = "", round_no: int = 0
    ) -> None:
        """Log item key -> one-line error for calls that failed after their retries, in one
        transaction (the watermark is read inside it, so no vote can slip in between)."""
        if not errors:
            return
        now = time.time()
        with self._tx() as conn:
            mark = conn.execute("SELECT COALESCE(MAX(id), 0) FROM annotations").fetchone()[0]
            conn.executemany(
                "INSERT INTO llm_failures(item_key, model, error, round, watermark, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(key, model, error, round_no, mark, now) for key, error in errors.items()],
            )

    def failed_llm_items(self, before: float | None = None) -> dict[int, str]:
        """Item key -> error of its latest failure, for items whose latest LLM attempt failed
        and that have no LLM vote since; with `before`, only failures written before then."""
        rows = self._read(_OPEN_FAILURES_SQL)
        return {
            int(key): str(error) for key, error, at in rows if before is None or at < before
        }

    def count_failed_llm_items(self) -> int:
        """Items whose latest LLM attempt failed and that have no LLM vote since."""
        sql = f"SELECT COUNT(*) FROM ({_OPEN_FAILURES_SQL}) AS open_failures"
        return int(self._read(sql)[0][0])
