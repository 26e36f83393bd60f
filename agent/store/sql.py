"""What the store's shared SQL needs of a database: a DB-API connection and a dialect.

The operations on items, annotations, the queue, caches, locks, failures and rounds are
written once, in SQL that SQLite and PostgreSQL both run (qmark `?` parameters, upserts with
ON CONFLICT, RETURNING), and mixed into each store over `SQLOps`. What the two engines do
differently is named in a `Dialect`: reading a JSON field, the row locks of a lease, and how
concurrent writers of a table are made to queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class Cursor(Protocol):
    """The part of a DB-API cursor the shared SQL uses."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the shared SQL uses (sqlite3's, or an adapter)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


@dataclass(frozen=True)
class Dialect:
    """What one engine spells its own way."""

    name: str
    # SQL expression: the 'note' field of the annotation `a`'s meta (JSON text), or NULL
    json_note: str
    # appended to the lease's SELECT: lock the rows taken, skip rows another lease holds
    lease_lock: str
    # a statement that makes concurrent writers of table {table} queue ("": they already do)
    table_lock: str

    def serialize(self, conn: Connection, table: str) -> None:
        """Inside a write transaction: other writers of `table` wait until it ends."""
        if self.table_lock:
            conn.execute(self.table_lock.format(table=table))


# SQLite: BEGIN IMMEDIATE already makes every writer of the file queue.
SQLITE = Dialect(
    name="sqlite",
    json_note="json_extract(a.meta, '$.note')",
    lease_lock="",
    table_lock="",
)


class SQLOps:
    """Base of the operation mixins: the store under them provides these three and a dialect."""

    _dialect: Dialect = SQLITE

    def _tx(self) -> AbstractContextManager[Connection]:
        """One write transaction: all of it lands or none."""
        raise NotImplementedError

    def _snapshot(self) -> AbstractContextManager[Connection]:
        """One read transaction: every SELECT inside it sees the same committed state."""
        raise NotImplementedError

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one SELECT."""
        raise NotImplementedError

    def _where(self) -> str:
        """The project as an error message names it (its file, its server)."""
        return str(getattr(self, "path", None) or "the project")


def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """INSERT of one row of `columns` that replaces the row with the same `key` columns."""
    marks = ", ".join("?" * len(columns))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table}({', '.join(columns)}) VALUES ({marks})"
        f" ON CONFLICT({', '.join(key)}) DO UPDATE SET {updates}"
    )


def chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    """Slices of at most `size` values (SQLite limits the parameters of one statement)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def dicts(cur: Cursor) -> list[dict[str, Any]]:
    """The cursor's rows as {column: value} dicts."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
