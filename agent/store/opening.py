"""Which store holds a project folder's data, decided in one place.

A folder holds either its SQLite database (`project.sqlite`) or a pointer to a PostgreSQL
project: `store.json`, {"url": "postgresql://USER@HOST:PORT/DB?project=NAME"}, never with a
password (libpq finds it in PGPASSWORD or ~/.pgpass). Every front door opens a project with
`open_store(folder)`, so `import`, `run`, `review`, `status` and `export` reach the same store
that `init` made.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import StoreError
from agent.store.postgres.url import parse_url
from agent.store.protocol import ProjectStore
from agent.store.sqlite import DB_FILE, Store
from agent.types import LabelSet

if TYPE_CHECKING:
    from agent.store.postgres.store import PostgresStore

STORE_FILE = "store.json"
INSTALL = "pip install 'labelagent[postgres]'"


def open_store(folder: Path) -> ProjectStore:
    """The project of `folder`: its SQLite file, or the PostgreSQL project it points to."""
    url = store_url(folder)
    if url is None:
        return Store.open(folder)
    if (folder / DB_FILE).exists():
        raise StoreError(
            f"{folder}: holds both {DB_FILE} and {STORE_FILE}; move the one not in use away"
        )
    return postgres_store().open(parse_url(url))


def create_store(folder: Path, label_set: LabelSet, url: str | None = None) -> ProjectStore:
    """A new project for `folder`: a SQLite file in it, or (with a PostgreSQL `url`) a
    project on the server and the folder's pointer to it. Without ?project=NAME the project
    is named after the folder."""
    if url is None:
        return Store.create(folder, label_set)
    where = parse_url(url, default_project=folder.resolve().name)
    for name in (DB_FILE, STORE_FILE):
        if (folder / name).exists():
            raise StoreError(f"{folder}: a project already exists here ({name})")
    cls = postgres_store()
    folder.mkdir(parents=True, exist_ok=True)
    _write_pointer(folder, {"url": where.saved})  # first: a failed write leaves no project
    try:
        return cls.create(where, label_set)
    except BaseException:
        with contextlib.suppress(OSError):
            (folder / STORE_FILE).unlink()
        raise


def store_url(folder: Path) -> str | None:
    """The PostgreSQL URL `folder` points to, or None for a SQLite project (no store.json)."""
    path = folder / STORE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read the project's store pointer ({exc})") from None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        raise StoreError(f'{path}: no "url" in it; write {{"url": "postgresql://..."}}')
    return url


def postgres_store() -> type[PostgresStore]:
    """The PostgreSQL store class; StoreError naming the extra when psycopg is missing."""
    try:
        from agent.store.postgres.store import PostgresStore
    except ImportError as exc:
        if not (exc.name or "psycopg").startswith("psycopg"):
            raise
        raise StoreError(f"the PostgreSQL store needs psycopg ({exc}); {INSTALL}") from None
    return PostgresStore


def _write_pointer(folder: Path, data: dict[str, Any]) -> None:
    """store.json whole or not at all (a temporary file, then a rename)."""
    path = folder / STORE_FILE
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
