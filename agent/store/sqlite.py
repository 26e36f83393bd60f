"""SQLite (WAL) project store: the only place that knows SQL.

Items, the label set, meta, rounds and human decisions here; append-only annotations in
`annotations.py`, the review queue with leases in `queue.py`, the LLM and embedding caches in
`caches.py`, the run lock and LLM claims in `locks.py`, failed LLM calls in `failures.py`,
what a project file must be in `files.py`. Every write is one transaction, so a crash or kill
at any moment leaves either all of it or none of it. `Store` implements `ProjectStore`
(`protocol.py`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import InputError, StoreError
from agent.store.annotations import IN_CHUNK, AnnotationOps, insert_annotations
from agent.store.caches import CacheOps, chunks
from agent.store.failures import FailureOps
from agent.store.files import (
    NEEDS_WRITE,
    check_project_file,
    connect_readonly,
    is_readonly_error,
    write_problem,
)
from agent.store.locks import LockOps
from agent.store.queue import QueueOps, complete_review
from agent.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from agent.types import Annotation, ImportResult, Item, Kind, LabelSet, Source, text_hash

if TYPE_CHECKING:
    from agent.store.protocol import ProjectStore

DB_FILE = "project.sqlite"


class Store(AnnotationOps, QueueOps, CacheOps, LockOps, FailureOps):
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
                _write_labels(conn, label_set)
        if label_set is not None:
            self._label_set = label_set

    # ---- label set and meta --------------------------------------------------------------

    @property
    def label_set(self) -> LabelSet:
        if self._label_set is None:
            rows = self._read("SELECT name, description FROM labels ORDER BY idx")
            self._label_set = LabelSet(tuple(r[0] for r in rows), tuple(r[1] for r in rows))
        return self._label_set

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # ---- items ---------------------------------------------------------------------------
    def add_items(
        self,
        rows: Iterable[tuple[str, str, str | None]],
        source_file: str = "",
        actor: str = "import",
    ) -> ImportResult:
        """Insert (ext_id, text, seed_label|None) rows in order, in ONE transaction.

        A row whose id is already present is skipped, so importing a file twice adds nothing.
        """
        added = skipped = seeds = 0
        now = time.time()
        with self._tx() as conn:
            for row_no, (ext_id, text, label) in enumerate(rows, start=1):
                cur = conn.execute(
                    "INSERT OR IGNORE INTO items(ext_id, text, text_hash, source_file, source_row)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (ext_id, text, text_hash(text), source_file, row_no),
                )
                if cur.rowcount == 0:
                    _check_same_text(conn, ext_id, text, source_file, row_no)
                    skipped += 1
                    continue
                added += 1
                if label is not None:
                    seeds += 1
                    conn.execute(
                        "INSERT INTO annotations(item_key, label, source, kind, actor, confidence,"
                        " created_at) VALUES (?, ?, 'import', 'label', ?, 1.0, ?)",
                        (cur.lastrowid, label, actor, now),
                    )
        with self._lock:  # fresh statistics keep the planner on the right indexes
            self._conn.execute("PRAGMA optimize")
        return ImportResult(added, skipped, seeds)

    def count_items(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM items")[0][0])

    def last_item_key(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(key), 0) FROM items")[0][0])

    def count_long_texts(self, chars: int) -> int:
        return int(self._read("SELECT COUNT(*) FROM items WHERE length(text) > ?", (chars,))[0][0])

    def items(self, keys: Sequence[int] | None = None) -> list[Item]:
        """Items in input order, or the given keys in the given order."""
        if keys is None:
            rows = self._read("SELECT key, ext_id, text, text_hash FROM items ORDER BY key")
            return [Item(*r) for r in rows]
        found: dict[int, Item] = {}
        for chunk in chunks(list(keys), 900):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, ext_id, text, text_hash FROM items WHERE key IN ({marks})"
            found.update({r[0]: Item(*r) for r in self._read(sql, chunk)})
        return [found[k] for k in keys]

    def iter_items(self, batch: int = 10_000) -> Iterator[list[Item]]:
        """Items in input order, a batch at a time (bounded memory for big corpora)."""
        last = 0
        while True:
            rows = self._read(
                "SELECT key, ext_id, text, text_hash FROM items WHERE key > ? ORDER BY key LIMIT ?",
                (last, batch),
            )
            if not rows:
                return
            last = rows[-1][0]
            yield [Item(*r) for r in rows]

    def existing_ids(self, ext_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(ext_ids), 900):
            marks = ",".join("?" * len(chunk))
            rows = self._read(f"SELECT ext_id FROM items WHERE ext_id IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    # ---- human decisions -----------------------------------------------------------------
    def record_human_labels(self, annotations: Sequence[Annotation], operator: str) -> list[int]:
        """Append human label annotations and count each one as a review done in the queue
        (what `complete` does), all in ONE transaction; returns the annotation ids in order.

        Refused before anything is written: an annotation that is not a human label
        (ValueError), names an item not in the project (StoreError) or an item another
        operator holds a running lease on (LeaseError).
        """
        for a in annotations:
            source, kind = Source(a.source), Kind(a.kind)
            if source is not Source.HUMAN or kind is not Kind.LABEL:
                raise ValueError(f"not a human label: {source.value} {kind.value} on {a.item_key}")
        now = time.time()
        with self._tx() as conn:
            missing = _missing_items(conn, [a.item_key for a in annotations])
            if missing:
                raise StoreError(f"no item {missing[0]} in the project ({len(missing)} unknown)")
            ids = insert_annotations(conn, annotations, now)
            for a in annotations:
                complete_review(conn, a.item_key, operator)
        return ids

    # ---- rounds --------------------------------------------------------------------------
    def start_round(self) -> int:
        with self._tx() as conn:
            cur = conn.execute("INSERT INTO rounds(started_at) VALUES (?)", (time.time(),))
            return int(cur.lastrowid or 0)

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


def _write_labels(conn: sqlite3.Connection, label_set: LabelSet) -> None:
    """Inside a write transaction: the label set and the creation time."""
    conn.executemany(
        "INSERT INTO labels(idx, name, description) VALUES (?, ?, ?)",
        [(i, n, d) for i, (n, d) in enumerate(zip(label_set.names, label_set.descriptions))],
    )
    conn.execute(
        "INSERT OR REPLACE INTO meta VALUES ('created_at', ?)", (json.dumps(time.time()),)
    )


def _check_same_text(
    conn: sqlite3.Connection, ext_id: str, text: str, source_file: str, row: int
) -> None:
    """A re-imported id must carry the same text; anything else is a conflict, not a skip."""
    stored = conn.execute("SELECT text_hash FROM items WHERE ext_id = ?", (ext_id,)).fetchone()
    if stored and stored[0] != text_hash(text):
        raise InputError(
            f"id '{ext_id}' is already in the project with a different text",
            file=source_file,
            row=row,
            field="id",
        )


def _missing_items(conn: sqlite3.Connection, keys: Sequence[int]) -> list[int]:
    """The keys (sorted, unique) that name no item."""
    wanted = set(keys)
    found: set[int] = set()
    for chunk in chunks(sorted(wanted), IN_CHUNK):
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0] for r in conn.execute(f"SELECT key FROM items WHERE key IN ({marks})", chunk)
        )
    return sorted(wanted - found)


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
