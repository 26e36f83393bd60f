"""The PostgreSQL project store: the store contract on a real server, plus what only it has:
projects as schemas of one database, its migrations, URLs without passwords, and reviewers in
two processes who never get the same item.

The server is the session's (`postgres_server.py`): started here with initdb and pg_ctl, or
these tests are skipped (they fail instead under LABELAGENT_REQUIRE_POSTGRES=1, as in CI).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from store_contract import LABELS, StoreContract

from agent.errors import StoreError
from agent.store import ProjectStore
from agent.store.opening import STORE_FILE, create_store, open_store
from agent.store.postgres.url import parse_url, schema_name
from agent.store.schema import MIGRATIONS as SQLITE_MIGRATIONS
from agent.store.schema import tables_of
from agent.store.sqlite import Store
from agent.types import LabelSet, QueueEntry

REPO = Path(__file__).resolve().parents[1]
psycopg = pytest.importorskip("psycopg")

from agent.store.postgres import schema as pg_schema  # noqa: E402
from agent.store.postgres.store import PostgresStore  # noqa: E402


class TestPostgresStore(StoreContract):
    """The contract on PostgreSQL: each project a fresh schema; reopening connects anew."""

    @pytest.fixture(autouse=True)
    def _server(self, postgres_server: PostgresServer) -> None:
        self.server = postgres_server

    def make_store(self, folder: Path, label_set: LabelSet) -> ProjectStore:
        return PostgresStore.create(parse_url(self.server.url()), label_set)

    def reopen_store(self, store: ProjectStore, folder: Path) -> ProjectStore:
        assert isinstance(store, PostgresStore)
        store.close()
        return PostgresStore.open(store.url)


def columns_sqlite(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
            for t in tables
            if not t.startswith("sqlite_")
        }
    finally:
        conn.close()


def columns_postgres(url: str) -> dict[str, list[str]]:
    where = parse_url(url)
    with psycopg.connect(where.conninfo) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (where.project,),
        ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


# ---- schema and migrations -------------------------------------------------------------------
def test_one_migration_list_makes_the_same_tables_and_columns_on_both_engines(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.url()
    PostgresStore.create(parse_url(url), LABELS).close()
    Store.create(tmp_path, LABELS).close()
    on_postgres = columns_postgres(url)
    assert on_postgres.pop("schema_version") == ["id", "application", "version"]
    assert on_postgres == columns_sqlite(tmp_path / "project.sqlite")
    assert set(on_postgres) == tables_of(SQLITE_MIGRATIONS)
    assert len(SQLITE_MIGRATIONS) == pg_schema.SCHEMA_VERSION


def test_an_older_project_is_migrated_and_a_newer_one_refused(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = parse_url(postgres_server.url())
    with PostgresStore.create(where, LABELS) as store:
        store.add_items([("a", "kept across the migration", None)])
    step = ["CREATE TABLE extra (x INTEGER)"]
    monkeypatch.setattr(pg_schema, "MIGRATIONS", [*pg_schema.MIGRATIONS, step])
    monkeypatch.setattr(pg_schema, "SCHEMA_VERSION", pg_schema.SCHEMA_VERSION + 1)
    with PostgresStore.open(where) as store:
        assert store.count_items() == 1
        assert store._read("SELECT version FROM schema_version") == [(len(SQLITE_MIGRATIONS) + 1,)]
        assert store._read("SELECT COUNT(*) FROM extra") == [(0,)]
    monkeypatch.undo()
    with pytest.raises(StoreError, match="newer than this labelagent"):
        PostgresStore.open(where)


def test_missing_foreign_and_duplicate_projects_are_refused_in_one_line(
    postgres_server: PostgresServer,
) -> None:
    where = parse_url(postgres_server.url())
    with pytest.raises(StoreError, match=f"no project '{where.project}' in this database"):
        PostgresStore.open(where)
    with psycopg.connect(where.conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {where.project}")
        conn.execute(f"CREATE TABLE {where.project}.other (x INTEGER)")
    with pytest.raises(StoreError, match="is not a labelagent project") as refused:
        PostgresStore.open(where)
    assert "\n" not in str(refused.value)
    taken = parse_url(postgres_server.url("taken"))
    PostgresStore.create(taken, LABELS).close()
    with pytest.raises(StoreError, match="a project 'taken' already exists"):
        PostgresStore.create(taken, LABELS)


def test_an_unreachable_server_is_one_line_naming_the_url_without_its_password() -> None:
    where = parse_url("postgresql://ann:s3cret@127.0.0.1:1/db?project=p&connect_timeout=2")
    with pytest.raises(StoreError) as refused:
        PostgresStore.open(where)
    message = str(refused.value)
    assert "\n" not in message and "s3cret" not in message
    assert message.startswith("postgresql://ann@127.0.0.1:1/db?connect_timeout=2&project=p: ")
    assert "start the server" in message


# ---- URLs -------------------------------------------------------------------------------------
def test_urls_keep_libpq_options_and_never_save_a_password() -> None:
    where = parse_url("postgres://ann:pw@db.example:5433/team?sslmode=require&project=support")
    assert where.project == "support" and where.has_password
    assert where.conninfo == "postgres://ann:pw@db.example:5433/team?sslmode=require"
    assert where.saved == "postgres://ann@db.example:5433/team?sslmode=require&project=support"
    assert parse_url("postgresql:///team", default_project="My Tickets-2").project == (
        "my_tickets_2"
    )
    assert schema_name("2024") == "la_2024" and schema_name("public") == "la_public"
    for bad in ("postgresql://h/db?project=Bad-Name", "postgresql://h/db?project=pg_x",
                "mysql://h/db?project=a", "postgresql://h/db"):  # fmt: skip
        with pytest.raises(StoreError):
            parse_url(bad)


def test_a_folder_points_to_its_postgres_project(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    folder = tmp_path / "Support Tickets"
    url = postgres_server.url().split("?")[0]  # no project: named after the folder
    with create_store(folder, LABELS, url) as store:
        store.add_items([("a", "text", None)])
    pointer = json.loads((folder / STORE_FILE).read_text())
    assert pointer == {"url": f"{url}?project=support_tickets"}
    with open_store(folder) as store:
        assert isinstance(store, PostgresStore) and store.count_items() == 1
    with pytest.raises(StoreError, match="a project already exists here"):
        create_store(folder, LABELS, postgres_server.url())
    with pytest.raises(StoreError, match="already exists in this database"):
        create_store(tmp_path / "support_tickets", LABELS, url)
    assert not (tmp_path / "support_tickets" / STORE_FILE).exists()  # nothing left behind


# ---- two reviewers in two processes -------------------------------------------------------------
REVIEWER = """
import sys, time
from agent.store.postgres.store import PostgresStore
from agent.store.postgres.url import parse_url
from agent.types import Annotation, Kind, Source
operator, url, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = PostgresStore.open(parse_url(url))
time.sleep(max(0.0, start - time.time()))
seen = []
while entries := store.lease(operator, n=2):
    for e in entries:
        seen.append(e.item_key)
        store.record_human_labels(
            [Annotation(e.item_key, "refund", Source.HUMAN, Kind.LABEL, actor=operator)], operator
        )
print(" ".join(map(str, seen)))
"""


def test_two_processes_reviewing_one_project_never_get_the_same_item(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url()
    with PostgresStore.create(parse_url(url), LABELS) as store:
        store.add_items((f"id{k}", f"text {k}", None) for k in range(1, 121))
        store.enqueue([QueueEntry(k, "disagree", float(-k)) for k in range(1, 121)])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = str(time.time() + 2.0)  # both import first, then lease at the same moment
    procs = [
        subprocess.Popen([sys.executable, "-c", REVIEWER, who, url, start],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for who in ("ann", "bob")
    ]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    ann, bob = ([int(k) for k in out.split()] for out, _ in outputs)
    assert ann and bob, "both reviewers took part"
    assert not set(ann) & set(bob)
    assert sorted(ann + bob) == list(range(1, 121))
    with PostgresStore.open(parse_url(url)) as store:
        assert store.queue_counts() == {"done": 120}
        assert store.count_annotations(source="human") == 120
