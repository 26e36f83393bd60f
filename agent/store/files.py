"""What a project's database file must be before the store opens it, and read-only access.

`Store.open` opens only what `Store.create` made: a SQLite file whose header carries
labelagent's application id (or, from before the id existed, exactly labelagent's tables).
Anything else (an empty file, another program's database, bytes that are no database) is
refused with one line and never written to: the checks read the header bytes, then look
through a connection that cannot write.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from agent.errors import StoreError
from agent.store.schema import APPLICATION_ID, MIGRATIONS, tables_of

SQLITE_MAGIC = b"SQLite format 3\x00"
UNTOUCHED = "left untouched"
NEEDS_WRITE = "this command needs write permission on the project folder and its database"


def check_project_file(path: Path, schema_version: int) -> None:
    """Refuse (StoreError, one line) a file that is not a labelagent database this version
    can open; reads only, so the file stays byte-identical whatever the verdict."""
    header = _header(path)
    if not header:
        raise StoreError(
            f"{path}: an empty file, not a labelagent database ({UNTOUCHED}); "
            "move it away and run 'labelagent init'"
        )
    if not header.startswith(SQLITE_MAGIC):
        raise StoreError(f"{path}: not a labelagent database (not SQLite at all; {UNTOUCHED})")
    try:
        conn = connect_readonly(path)
        try:
            app_id, version, tables = _identity(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a labelagent database ({exc}; {UNTOUCHED})") from None
    _check_identity(path, app_id, version, tables, schema_version)


def _header(path: Path) -> bytes:
    """The first 100 bytes of the file (the SQLite header), b'' for an empty file."""
    try:
        with path.open("rb") as handle:
            return handle.read(100)
    except PermissionError:
        raise StoreError(f"{path}: no permission to read the project database") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the project database ({exc.strerror})") from None


def _identity(conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
    """(application_id, user_version, table names without SQLite's own)."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return app_id, version, {str(r[0]).lower() for r in rows}


def _check_identity(
    path: Path, app_id: int, version: int, tables: set[str], schema_version: int
) -> None:
    """Ours by application id, or (made before the id existed) by version and tables."""
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path}: another application's SQLite database (application_id {app_id:#x}), "
            f"not a labelagent project; {UNTOUCHED}"
        )
    if version > schema_version:
        raise StoreError(
            f"{path}: schema version {version} is newer than this labelagent "
            f"({schema_version}); upgrade labelagent"
        )
    if app_id == APPLICATION_ID:
        return
    expected = tables_of(MIGRATIONS[:version])
    if version < 1 or not expected <= tables <= tables_of(MIGRATIONS):
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise StoreError(
            f"{path}: a SQLite database that labelagent did not create (tables: {shown}); "
            f"{UNTOUCHED}"
        )


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. `mode=ro` first; in a folder where SQLite cannot make
    its WAL index (no write permission) and no WAL is pending, `immutable=1`."""
    uri = path.resolve().as_uri()
    try:
        return _probe(f"{uri}?mode=ro")
    except sqlite3.OperationalError:
        if Path(f"{path}-wal").exists():
            raise
    return _probe(f"{uri}?immutable=1")


def _probe(uri: str) -> sqlite3.Connection:
    """Connect to `uri` and read the schema once, so an unusable connection fails here."""
    conn = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def write_problem(path: Path) -> str | None:
    """Why the store cannot write `path` (the file or its folder lacks write permission),
    or None where it can."""
    if not os.access(path, os.W_OK):
        return "no write permission on the database file"
    if not os.access(path.parent, os.W_OK):
        return "no write permission on the project folder"
    return None


def is_readonly_error(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused a write for lack of permission (not a lock or a full disk)."""
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text
