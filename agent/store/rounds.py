"""Rounds: each run of selection, labelling and training opens one and closes it with stats.

Mixed into each store (over `SQLOps`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from agent.store.sql import SQLOps


class RoundOps(SQLOps):
    """Open, close and list rounds; close the ones a killed run left open."""

    def start_round(self) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO rounds(started_at) VALUES (?) RETURNING id", (time.time(),)
            )
            return int(cur.fetchone()[0])

    def finish_round(self, round_id: int, stats: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE rounds SET finished_at = ?, stats = ? WHERE id = ?",
                (time.time(), json.dumps(stats), round_id),
            )

    def close_interrupted_rounds(self, note: str) -> list[int]:
        """Close every round still open (its run died) with `note` in its stats; their ids."""
        with self._tx() as conn:
            rows = conn.execute("SELECT id, stats FROM rounds WHERE finished_at IS NULL")
            closed = [(r[0], json.loads(r[1] or "{}")) for r in rows.fetchall()]
            conn.executemany(
                "UPDATE rounds SET finished_at = ?, stats = ? WHERE id = ?",
                [
                    (time.time(), json.dumps(stats | {"interrupted": True, "note": note}), rid)
                    for rid, stats in closed
                ],
            )
        return [rid for rid, _ in closed]

    def rounds(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT id, started_at, finished_at, stats FROM rounds ORDER BY id")
        return [
            {"id": r[0], "started_at": r[1], "finished_at": r[2], "stats": json.loads(r[3])}
            for r in rows
        ]
