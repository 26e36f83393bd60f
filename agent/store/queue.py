"""The review queue with leases: which item each operator sees next, never two at once.

A lease is a claim with an expiry: an operator who walks away (or whose terminal dies)
returns the item to the queue when the lease runs out. `reviews_needed` > 1 marks an overlap
item shown to that many different operators, for inter-annotator agreement.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from agent.errors import LeaseError
from agent.store.sql import Connection, SQLOps
from agent.types import QueueEntry, QueueView


class QueueOps(SQLOps):
    """Queue operations mixed into each store (over `SQLOps`)."""

    def enqueue(self, entries: Sequence[QueueEntry]) -> int:
        """Add or refresh pending entries; reviewed items stay done. Returns rows touched."""
        now = time.time()
        touched = 0
        with self._tx() as conn:
            for e in entries:
                cur = conn.execute(
                    "INSERT INTO queue(item_key, reason, priority, round, suggestion,"
                    " reviews_needed, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(item_key) DO UPDATE SET reason = excluded.reason,"
                    " priority = excluded.priority, suggestion = excluded.suggestion,"
                    " round = excluded.round WHERE queue.state = 'pending'",
                    (
                        e.item_key,
                        e.reason,
                        e.priority,
                        e.round,
                        json.dumps(e.suggestion),
                        e.reviews_needed,
                        now,
                    ),
                )
                touched += cur.rowcount
        return touched

    def lease(self, operator: str, n: int = 1, lease_seconds: float = 600) -> list[QueueEntry]:
        """Claim up to n pending items (most valuable first) for `operator`, atomically: the
        rows taken are locked (PostgreSQL skips rows another lease is taking), so two
        operators, in two processes or on two machines, never get the same item."""
        now = time.time()
        sql = _LEASABLE_SQL + self._dialect.lease_lock
        with self._tx() as conn:
            rows = conn.execute(sql, (operator, now, operator, operator, n)).fetchall()
            conn.executemany(
                "UPDATE queue SET lease_owner = ?, lease_expires = ? WHERE item_key = ?",
                [(operator, now + lease_seconds, r[0]) for r in rows],
            )
        return [_entry(r) for r in rows]

    def renew(self, item_key: int, operator: str, lease_seconds: float = 600) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE queue SET lease_expires = ? WHERE item_key = ? AND lease_owner = ?",
                (time.time() + lease_seconds, item_key, operator),
            )

    def complete(self, item_key: int, operator: str) -> None:
        """One review done; the entry is done once it has all the reviews it needs. LeaseError
        (nothing written) while another operator holds the item's lease."""
        with self._tx() as conn:
            complete_review(conn, item_key, operator)

    def release(self, item_key: int, operator: str, demote: bool = False) -> None:
        """Give a leased item back; `demote` (skip) sends it behind every other pending item."""
        with self._tx() as conn:
            floor = 0.0
            if demote:
                floor = conn.execute(
                    "SELECT COALESCE(MIN(priority), 0) FROM queue WHERE state = 'pending'"
                ).fetchone()[0]
            conn.execute(
                "UPDATE queue SET lease_owner = NULL, lease_expires = NULL,"
                " priority = CASE WHEN ? THEN ? - 1 ELSE priority END"
                " WHERE item_key = ? AND lease_owner = ?",
                (demote, floor, item_key, operator),
            )

    def skip(self, item_key: int, operator: str) -> None:
        """Free `operator`'s lease and send the item behind every item they have not skipped
        (theirs only: a skip says nothing about the item's value to anyone else). A row, not
        a priority, so that queue refreshes, which rewrite priorities, keep it."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE queue SET lease_owner = NULL, lease_expires = NULL"
                " WHERE item_key = ? AND lease_owner = ?",
                (item_key, operator),
            )
            conn.execute(
                "INSERT INTO queue_skips(item_key, operator, skipped_at) VALUES (?, ?, ?)"
                " ON CONFLICT(item_key, operator) DO UPDATE SET skipped_at = excluded.skipped_at",
                (item_key, operator, time.time()),
            )

    def skipped(self, operator: str) -> list[int]:
        rows = self._read(
            "SELECT s.item_key FROM queue_skips s JOIN queue q ON q.item_key = s.item_key"
            " WHERE s.operator = ? AND q.state = 'pending' ORDER BY s.skipped_at, s.item_key",
            (operator,),
        )
        return [r[0] for r in rows]

    def release_operator(self, operator: str) -> int:
        """Give back every lease `operator` holds (an earlier session of theirs that died);
        returns how many items went back to the queue."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE queue SET lease_owner = NULL, lease_expires = NULL"
                " WHERE lease_owner = ? AND state = 'pending'",
                (operator,),
            )
            return cur.rowcount

    def reopen(
        self, item_key: int, operator: str | None = None, lease_seconds: float = 600
    ) -> None:
        """Undo of a review: the item is pending again, one review fewer, and leased back to
        the operator who undid it (so nobody else takes it while they decide again)."""
        expires = time.time() + lease_seconds if operator else None
        with self._tx() as conn:
            conn.execute(
                "UPDATE queue SET state = 'pending',"
                " reviews_done = CASE WHEN reviews_done > 0 THEN reviews_done - 1 ELSE 0 END,"
                " lease_owner = ?, lease_expires = ? WHERE item_key = ?",
                (operator, expires, item_key),
            )

    def queue_size(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM queue WHERE state = 'pending'")[0][0])

    def queue_counts(self) -> dict[str, int]:
        rows = self._read("SELECT state, COUNT(*) FROM queue GROUP BY state")
        return {state: count for state, count in rows}

    def pending(self, limit: int | None = None) -> list[QueueEntry]:
        sql = (
            "SELECT item_key, reason, priority, round, suggestion, reviews_needed FROM queue"
            " WHERE state = 'pending' ORDER BY priority DESC, item_key"
        )
        rows = self._read(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [_entry(r) for r in rows]

    def queued_keys(self) -> Iterator[int]:
        """Keys of every item ever queued (pending or done)."""
        return (r[0] for r in self._read("SELECT item_key FROM queue"))

    def queue_views(self) -> dict[int, QueueView]:
        rows = self._read("SELECT item_key, reason, state, suggestion FROM queue")
        return {r[0]: QueueView(r[0], r[1], r[2], json.loads(r[3])) for r in rows}


# Pending, not leased by someone else (or their lease ran out), not yet reviewed by this operator;
# the items this operator skipped last (oldest skip first), the rest by priority.
_LEASABLE_SQL = """
SELECT q.item_key, q.reason, q.priority, q.round, q.suggestion, q.reviews_needed FROM queue q
LEFT JOIN queue_skips s ON s.item_key = q.item_key AND s.operator = ?
WHERE q.state = 'pending'
  AND (q.lease_owner IS NULL OR q.lease_expires < ? OR q.lease_owner = ?)
  AND NOT EXISTS (SELECT 1 FROM annotations a INDEXED BY annotations_item
                  WHERE a.item_key = q.item_key AND a.kind = 'label'
                  AND a.source = 'human' AND a.actor = ?
                  AND a.id NOT IN (SELECT target FROM annotations WHERE kind = 'retract'))
ORDER BY s.skipped_at IS NOT NULL, s.skipped_at, q.priority DESC, q.item_key LIMIT ?
"""


def complete_review(conn: Connection, item_key: int, operator: str | None = None) -> None:
    """Inside a write transaction: count one review of `item_key` and free its lease; the
    entry is done once it has all the reviews it needs (no queue row: nothing happens).
    With `operator`: LeaseError while someone else holds a lease on the item that has not run
    out (an expired lease, or none, lets anyone complete it)."""
    if operator is not None:
        _check_lease(conn, item_key, operator)
        # answered: the skip has done its job (an undo must not send the item back again)
        conn.execute(
            "DELETE FROM queue_skips WHERE item_key = ? AND operator = ?", (item_key, operator)
        )
    conn.execute(
        "UPDATE queue SET reviews_done = reviews_done + 1, lease_owner = NULL,"
        " lease_expires = NULL, state = CASE WHEN reviews_done + 1 >= reviews_needed"
        " THEN 'done' ELSE 'pending' END WHERE item_key = ?",
        (item_key,),
    )


def _check_lease(conn: Connection, item_key: int, operator: str) -> None:
    """Raise LeaseError when another operator's lease on `item_key` is still running."""
    row = conn.execute(
        "SELECT lease_owner, lease_expires FROM queue WHERE item_key = ?", (item_key,)
    ).fetchone()
    if row is None or row[0] is None or row[0] == operator:
        return
    left = float(row[1] or 0.0) - time.time()
    if left > 0:
        raise LeaseError(item_key, str(row[0]), left)


def _entry(row: tuple[Any, ...]) -> QueueEntry:
    return QueueEntry(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])
