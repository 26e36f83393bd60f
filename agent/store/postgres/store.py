"""PostgreSQL project store: one schema of a shared database per project, for teams.

Opening, transactions and migrations here; every operation is the SQL the SQLite store runs
too (`agent/store/sql.py` and the mixins), with PostgreSQL's `Dialect`: a lease locks the rows
it takes and skips rows another lease is taking (`FOR UPDATE SKIP LOCKED`), so reviewers on
several machines never get the same item; the run lock and the LLM claims lock their table
for the moment they check it. Writes run at READ COMMITTED, each one transaction; a
`_snapshot` read is one REPEATABLE READ transaction. `PostgresStore` implements
`ProjectStore` (`agent/store/protocol.py`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from agent.errors import StoreError
from agent.store.annotations import AnnotationOps
from agent.store.caches import CacheOps
from agent.store.failures import FailureOps
from agent.store.items import ItemOps, write_labels
from agent.store.locks import LockOps
from agent.store.postgres import schema
from agent.store.postgres.connection import QmarkConnection, connect, server_errors, use_schema
from agent.store.postgres.url import ProjectURL
from agent.store.queue import QueueOps
from agent.store.rounds import RoundOps
from agent.store.sql import Dialect
from agent.types import LabelSet

if TYPE_CHECKING:
    from agent.store.protocol import ProjectStore

POSTGRES = Dialect(
    name="postgresql",
    json_note="(a.meta::jsonb ->> 'note')",
    lease_lock=" FOR UPDATE OF q SKIP LOCKED",
    table_lock="LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE",
)


class PostgresStore(ItemOps, RoundOps, AnnotationOps, QueueOps, CacheOps, LockOps, FailureOps):
    """One project in its schema of a PostgreSQL database. Thread-safe; any number of
    processes on any number of machines may read and write it at once."""

    _dialect = POSTGRES

    def __init__(self, conn: psycopg.Connection[Any], url: ProjectURL) -> None:
        self._conn = conn
        self._q = QmarkConnection(conn)
        self._lock = threading.RLock()
        self.url = url
        self._label_set: LabelSet | None = None

    @property
    def path(self) -> Path | None:
        """None: the project lives on a server (`url` says where)."""
        return None

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, url: ProjectURL, label_set: LabelSet) -> PostgresStore:
        """Create the project: its schema, tables and labels in ONE transaction, so a failed
        create leaves nothing behind. StoreError when a project of that name exists."""
        store = cls(connect(url), url)
        try:
            with store._tx() as conn:
                _create_schema(store._conn, url)
                use_schema(store._conn, url.project)
                conn.execute(schema.VERSION_TABLE)
                conn.execute("INSERT INTO schema_version VALUES (1, ?, 0)", (schema.APPLICATION,))
                store._migrate_in(conn, 0)
                write_labels(conn, label_set)
        except BaseException:
            store.close()
            raise
        store._label_set = label_set
        return store

    @classmethod
    def open(cls, url: ProjectURL) -> PostgresStore:
        """Open the project that `create` made, applying missing migrations; StoreError (one
        line) when the server, database or project is not there or is not labelagent's."""
        store = cls(connect(url), url)
        try:
            with server_errors(url.saved), store._lock:
                if not _schema_exists(store._conn, url.project):
                    raise StoreError(
                        f"{url.saved}: no project '{url.project}' in this database; "
                        "run 'labelagent init DIR --store URL' to make one"
                    )
                use_schema(store._conn, url.project)
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _where(self) -> str:
        return self.url.saved

    # ---- transactions --------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[QmarkConnection]:
        """One write transaction (READ COMMITTED; the operations take the locks they need)."""
        with self._transaction("BEGIN") as conn:
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[QmarkConnection]:
        """One read transaction: every SELECT inside it sees the same committed state."""
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") as conn:
            yield conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[QmarkConnection]:
        with self._lock, server_errors(self.url.saved):
            self._conn.execute(begin)
            try:
                yield self._q
            except BaseException:
                with contextlib.suppress(psycopg.Error):  # a lost connection has no tx left
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, server_errors(self.url.saved):
            return self._q.execute(sql, args).fetchall()

    def _after_import(self) -> None:
        with self._lock, server_errors(self.url.saved):  # fresh statistics for the planner
            self._conn.execute("ANALYZE items")

    # ---- migrations ----------------------------------------------------------------------
    def _migrate(self) -> None:
        """Apply the missing migrations in one transaction (the version row locked, so two
        processes opening an old project migrate it once)."""
        with self._tx() as conn:
            row = _version_row(conn, self.url)
            self._migrate_in(conn, int(row[1]))

    def _migrate_in(self, conn: QmarkConnection, version: int) -> None:
        """Inside a write transaction: from `version` to this labelagent's."""
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{self.url.saved}: schema version {version} is newer than this labelagent "
                f"({schema.SCHEMA_VERSION}); upgrade labelagent"
            )
        for step in schema.MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (schema.SCHEMA_VERSION,))


def _create_schema(conn: psycopg.Connection[Any], url: ProjectURL) -> None:
    """Inside a write transaction: the project's schema; StoreError when it exists."""
    try:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(url.project)))
    except psycopg.errors.DuplicateSchema:
        raise StoreError(
            f"{url.saved}: a project '{url.project}' already exists in this database; "
            "open it with its folder, or choose another ?project=NAME"
        ) from None


def _schema_exists(conn: psycopg.Connection[Any], project: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (project,)).fetchone()
    return row is not None


def _version_row(conn: QmarkConnection, url: ProjectURL) -> tuple[Any, ...]:
    """The schema's (application, version) row, locked; StoreError when it is not ours."""
    try:
        row = conn.execute(
            "SELECT application, version FROM schema_version WHERE id = 1 FOR UPDATE"
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    if row is None or row[0] != schema.APPLICATION:
        raise StoreError(
            f"{url.saved}: schema '{url.project}' is not a labelagent project (left untouched)"
        )
    return tuple(row)


if TYPE_CHECKING:  # mypy fails here when PostgresStore and the protocol drift apart
    _: type[ProjectStore] = PostgresStore
