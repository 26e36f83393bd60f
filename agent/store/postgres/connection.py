"""A psycopg 3 connection to a project's schema, the shared SQL's `?` on it, and one-line errors.

The shared SQL (`agent/store/sql.py`) is written with qmark parameters, as sqlite3 takes
them; `QmarkConnection` hands it to psycopg with psycopg's `%s`, and drops SQLite's planner
hints (`INDEXED BY`), which PostgreSQL's planner does without.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from agent.errors import StoreError
from agent.store.postgres.url import ProjectURL

# what the server or the network says, not a bug in our SQL
_OUTSIDE = (
    psycopg.OperationalError,
    psycopg.IntegrityError,
    psycopg.DataError,
    psycopg.errors.InsufficientPrivilege,
)
CONNECT_TIMEOUT_S = 10  # an unreachable host fails in seconds, not minutes (the URL may say)
_HINT = re.compile(r"\s+INDEXED BY \w+", re.IGNORECASE)

# fragment of the server's or libpq's message -> what to do
_HINTS: tuple[tuple[str, str], ...] = (
    ("password", "give the password by PGPASSWORD or a line in ~/.pgpass"),
    ("does not exist", "create it (createdb, CREATE ROLE) or fix the URL"),
    ("connection refused", "start the server, or fix the host and port in the URL"),
    ("could not translate host name", "fix the host in the URL"),
    ("timeout", "check that the server is reachable from here"),
    ("permission denied", "ask the database owner for rights on the database and schema"),
)


@functools.lru_cache(maxsize=512)
def to_pyformat(statement: str) -> str:
    """A qmark statement as psycopg takes it: `?` -> `%s`, a literal `%` doubled, no hints."""
    return _HINT.sub("", statement).replace("%", "%%").replace("?", "%s")


class QmarkConnection:
    """The `agent.store.sql.Connection` the shared SQL runs on, over a psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, statement: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        return self._conn.execute(to_pyformat(statement), tuple(parameters))

    def executemany(self, statement: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Any]:
        cur = self._conn.cursor()
        cur.executemany(to_pyformat(statement), [tuple(p) for p in parameters])
        return cur


def connect(url: ProjectURL) -> psycopg.Connection[Any]:
    """An autocommit connection (the store issues BEGIN) to the server, not yet to a schema."""
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in url.conninfo:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    with server_errors(url.saved):
        return psycopg.connect(url.conninfo, **options)


def use_schema(conn: psycopg.Connection[Any], project: str) -> None:
    """Every later statement on `conn` names the project's tables (search_path)."""
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(project)))


@contextmanager
def server_errors(where: str) -> Iterator[None]:
    """Inside: a lost or refused connection, or data the server refuses, becomes a StoreError
    of one line naming `where` and what to do; a bug in our SQL stays what it is."""
    try:
        yield
    except _OUTSIDE as exc:
        raise StoreError(f"{where}: {describe(exc)}") from None


def describe(exc: psycopg.Error) -> str:
    """The driver's message on one line, with what to do where we know it."""
    words = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    words = words or type(exc).__name__
    todo = next((t for key, t in _HINTS if key in words.lower()), "")
    return f"PostgreSQL: {words}" + (f"; {todo}" if todo else "")
