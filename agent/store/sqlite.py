"""SQLite (WAL) project store: one file in the project folder.

Opening, transactions and migrations here; the operations are SQL shared with the PostgreSQL
store (`agent/store/sql.py`): items, the label set, meta and human decisions in `items.py`,
rounds in `rounds.py`, append-only annotations in `annotations.py`, the review queue with
leases in `queue.py`, the LLM and embedding caches in `caches.py`, the run lock and LLM claims
in `locks.py`, failed LLM calls in `failures.py`; what a project file must be in `files.py`.
Every write is one transaction, so a crash or kill at any moment leaves either all of it or
none of it. `Store` implements `ProjectStore` (`protocol.py`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import StoreError
from agent.store.annotations import AnnotationOps
from agent.store.caches import CacheOps
from agent.store.failures import FailureOps
from agent.store.files import (
    NEEDS_WRITE,
    check_project_file,
    connect_readonly,
    is_readonly_error,
    write_problem,
)
from agent.store.items import ItemOps, write_labels
from agent.store.locks import LockOps
from agent.store.queue import QueueOps
from agent.store.rounds import RoundOps
from agent.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from agent.types import LabelSet

if TYPE_CHECKING:
    from agent.store.protocol import ProjectStore

DB_FILE = "project.sqlite"


class Store(ItemOps, RoundOps, AnnotationOps, QueueOps, CacheOps, LockOps, FailureOps):
    """One project's SQLite database. Thread-safe; several processes may write at once."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path | None, readonly: str | None = None
    ) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self._readonly = readonly  # why this store cannot write, None when it can
        self._label_set: LabelSet | None = None

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, label_set: LabelSet) -> Store:
        """Create a new project database in `folder` (which may exist but must hold no project)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / DB_FILE
        if path.exists():
            raise StoreError(f"{folder}: a project already exists here ({DB_FILE})")
        store = cls(_connect(str(path)), path)
        store._migrate(label_set)  # schema, application id and labels in one transaction
        return store

    @classmethod
    def open(cls, folder: Path, readonly: bool | None = None) -> Store:
        """Open the project that `create` made in `folder`, and nothing else: another file is
        refused with one line and left byte-identical. `readonly` None opens read-only when
        the file or folder lacks write permission (reads work; a write says why it can't)."""
        path = folder / DB_FILE
        if not path.exists():
            raise StoreError(
                f"{folder}: not a labelagent project (no {DB_FILE}); run 'labelagent init'"
            )
        check_project_file(path, SCHEMA_VERSION)
        problem = write_problem(path)
        if readonly or (readonly is None and problem):
            return cls._open_readonly(path, problem or "opened read-only")
        if problem:
            raise StoreError(f"{path}: {problem}; this command needs to write the project")
        try:
            store = cls(_connect(str(path)), path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a labelagent database ({exc})") from None
        try:
            store._migrate()
        except sqlite3.DatabaseError as exc:
            store.close()
            raise StoreError(f"{path}: not a labelagent database ({exc})") from None
        except StoreError:
            store.close()  # e.g. a newer schema: refuse without holding the file open
            raise
        return store

    @classmethod
    def _open_readonly(cls, path: Path, reason: str) -> Store:
        """A store that reads `path` and refuses every write with `reason`."""
        try:
            conn = connect_readonly(path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open read-only ({exc}; {reason})") from None
        conn.execute("PRAGMA foreign_keys=ON")
        return cls(conn, path, readonly=reason)

    @classmethod
    def memory(cls, label_set: LabelSet) -> Store:
        """An in-memory store for library users with a list of texts and no project folder."""
        store = cls(_connect(":memory:"), None)
        store._migrate(label_set)
        return store

    @property
    def readonly(self) -> bool:
        """True when this store can only read (no write permission, or opened read-only)."""
        return self._readonly is not None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE so concurrent writers queue instead of failing."""
        if self._readonly is not None:
            raise StoreError(f"{self.path}: cannot write ({self._readonly}); {NEEDS_WRITE}")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if is_readonly_error(exc):  # permissions changed under an open store
                    raise StoreError(f"{self.path}: cannot write ({exc}); {NEEDS_WRITE}") from None
                raise

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every SELECT inside it sees the same committed state."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _migrate(self, label_set: LabelSet | None = None) -> None:
        """Apply the missing migrations and mark the file as ours; a new project's labels
        land in the same transaction, so no database ever exists without its label set."""
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this labelagent "
                    f"({SCHEMA_VERSION}); upgrade labelagent"
                )
            for step in MIGRATIONS[version:]:
                for statement in filter(str.strip, step.split(";")):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            if label_set is not None:
                write_labels(conn, label_set)
        if label_set is not None:
            self._label_set = label_set

    def _after_import(self) -> None:
        with self._lock:  # fresh statistics keep the planner on the right indexes
            self._conn.execute("PRAGMA optimize")


def _connect(path: str) -> sqlite3.Connection:
    """Autocommit connection (we issue BEGIN), WAL, fsync on commit, patient with locks."""
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    try:
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


if TYPE_CHECKING:  # mypy fails here when Store and the protocol drift apart
    _: type[ProjectStore] = Store
