"""The SQLite project store: the store contract on a file and in memory, plus what only
SQLite has: schema and migrations, the database file, WAL, and two real processes at once.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_contract import LABELS, StoreContract, label

import agent.store.items as items_module
import agent.store.sqlite as store_module
from agent.errors import StoreError
from agent.routing.sources import counts_by_source
from agent.store import ProjectStore
from agent.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, tables_of
from agent.store.sqlite import DB_FILE, Store
from agent.types import LabelSet, QueueEntry, Source

REPO = Path(__file__).resolve().parents[1]


class TestSQLiteFileStore(StoreContract):
    """The contract on a project folder; reopening reads the file through a new connection."""

    def make_store(self, folder: Path, label_set: LabelSet) -> ProjectStore:
        return Store.create(folder, label_set)

    def reopen_store(self, store: ProjectStore, folder: Path) -> ProjectStore:
        store.close()
        return Store.open(folder)


class TestSQLiteMemoryStore(StoreContract):
    """The contract in memory (it lives as long as its connection, so reopening is a no-op)."""

    def make_store(self, folder: Path, label_set: LabelSet) -> ProjectStore:
        return Store.memory(label_set)


def make_store(folder: Path, n: int = 6) -> Store:
    """A project on disk with n items 'id1'..'idn' (keys 1..n)."""
    store = Store.create(folder, LABELS)
    store.add_items((f"id{k}", f"text number {k}", None) for k in range(1, n + 1))
    return store


def queued(folder: Path, n: int = 6, reviews_needed: int = 1) -> Store:
    """n items, all queued; item k has priority n-k, so item 1 comes first."""
    store = make_store(folder, n)
    entries = [
        QueueEntry(k, "disagree", float(n - k), 1, {"best": "refund"}, reviews_needed)
        for k in range(1, n + 1)
    ]
    assert store.enqueue(entries) == n
    return store


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


# ---- opening, schema, migrations -----------------------------------------------------------
def test_create_then_open_keeps_labels_items_and_uses_wal(tmp_path: Path) -> None:
    with make_store(tmp_path / "p") as store:
        assert store.count_items() == 6
    with Store.open(tmp_path / "p") as store:
        assert store.label_set == LABELS
        assert store.label_set.describe("card_lost") == "card gone"
        assert [i.id for i in store.items()] == [f"id{k}" for k in range(1, 7)]
        assert store._read("PRAGMA journal_mode")[0][0] == "wal"
    assert user_version(tmp_path / "p" / DB_FILE) == SCHEMA_VERSION


def test_create_refuses_an_existing_project_and_open_a_missing_one(tmp_path: Path) -> None:
    make_store(tmp_path / "p").close()
    with pytest.raises(StoreError, match="already exists"):
        Store.create(tmp_path / "p", LABELS)
    with pytest.raises(StoreError, match="not a labelagent project"):
        Store.open(tmp_path / "elsewhere")


def test_memory_store_works_without_a_folder() -> None:
    with Store.memory(LABELS) as store:
        assert store.last_item_key() == 0
        store.add_items([("a", "hello", "refund"), ("b", "world", None)])
        assert store.path is None
        assert store.count_items() == 2
        assert store.last_item_key() == max(i.key for i in store.items())
        assert counts_by_source(store) == {"import": 1}


def test_empty_database_at_version_zero_is_refused_and_left_empty(tmp_path: Path) -> None:
    """Issue 15: an empty file is not a project (it used to become one with no labels)."""
    folder = tmp_path / "p"
    folder.mkdir()
    sqlite3.connect(folder / DB_FILE).close()  # an empty file: user_version 0, no tables
    with pytest.raises(StoreError, match="empty file, not a labelagent database"):
        Store.open(folder)
    assert (folder / DB_FILE).read_bytes() == b""


def test_database_made_before_the_application_id_is_migrated_and_marked(tmp_path: Path) -> None:
    """Version 1 with application_id 0 and labelagent's tables: an earlier labelagent's."""
    make_store(tmp_path / "p").close()
    conn = sqlite3.connect(tmp_path / "p" / DB_FILE)
    later = "".join(f"DROP TABLE {name};" for name in sorted(tables_of(MIGRATIONS[1:])))
    conn.executescript(later + " PRAGMA application_id = 0; PRAGMA user_version = 1;")
    conn.close()
    with Store.open(tmp_path / "p") as store:
        assert store.count_items() == 6
        assert store.claim_for_llm([1], "run") == [1]  # the new tables are there
    conn = sqlite3.connect(tmp_path / "p" / DB_FILE)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()
    assert user_version(tmp_path / "p" / DB_FILE) == SCHEMA_VERSION


def test_older_database_gets_the_new_migration_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store(tmp_path / "p").close()
    step = "ALTER TABLE items ADD COLUMN note TEXT NOT NULL DEFAULT 'none'"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, step])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store.open(tmp_path / "p") as store:
        assert store.count_items() == 6
        assert store._read("SELECT DISTINCT note FROM items") == [("none",)]
    assert user_version(tmp_path / "p" / DB_FILE) == SCHEMA_VERSION + 1
    with Store.open(tmp_path / "p") as store:  # already migrated: the step does not run twice
        assert store.count_items() == 6


def test_newer_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    make_store(tmp_path / "p").close()
    conn = sqlite3.connect(tmp_path / "p" / DB_FILE)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        Store.open(tmp_path / "p")
    assert user_version(tmp_path / "p" / DB_FILE) == SCHEMA_VERSION + 1


def test_a_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / DB_FILE).write_bytes(b"this is not a database, just some bytes" * 50)
    with pytest.raises(StoreError, match="not a labelagent database"):
        Store.open(folder)


# ---- one transaction per human decision ----------------------------------------------------
@pytest.mark.parametrize("step", ["insert_annotations", "complete_review"])
def test_a_crash_inside_record_human_labels_leaves_neither_label_nor_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The step runs (its SQL lands inside the transaction), then the process 'dies'."""
    real = getattr(items_module, step)

    def run_then_crash(*args: object) -> object:
        real(*args)
        raise RuntimeError("killed")

    with queued(tmp_path / "p", n=2) as store:
        store.lease("ann", n=2)
        monkeypatch.setattr(items_module, step, run_then_crash)
        answers = [label(1, "refund", Source.HUMAN, "ann"), label(2, "other", Source.HUMAN, "ann")]
        with pytest.raises(RuntimeError, match="killed"):
            store.record_human_labels(answers, "ann")
    with Store.open(tmp_path / "p") as store:
        assert store.count_annotations() == 0
        assert store.queue_counts() == {"pending": 2}
        assert store.lease("bob", n=2) == []  # ann's leases stand: no completion landed


# A real process records one decision (two labels) through the one recording function, and is
# killed with SIGKILL just before or just after one SQL statement of it: every step in turn.
# The hook lives in this test's worker only: it wraps the store's connection.
KILLED_WORKER = """
import os, signal, sys, types
from pathlib import Path
sys.modules["agent"] = types.ModuleType("agent")
sys.modules["agent"].__path__ = [str(Path.cwd() / "agent")]
from agent.loop.record import HumanLabel, record_human_labels
from agent.store.sqlite import Store

class DyingConnection:
    def __init__(self, conn, step, when):
        self.conn, self.step, self.when, self.count = conn, step, when, 0
    def _run(self, method, *args):
        self.count += 1
        if self.count == self.step and self.when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = getattr(self.conn, method)(*args)
        if self.count == self.step and self.when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    def execute(self, *args):
        return self._run("execute", *args)
    def executemany(self, *args):
        return self._run("executemany", *args)
    def __getattr__(self, name):
        return getattr(self.conn, name)

store = Store.open(Path(sys.argv[1]))
store._conn = DyingConnection(store._conn, int(sys.argv[2]), sys.argv[3])
answers = [HumanLabel(1, "refund"), HumanLabel(2, "other")]
record_human_labels(store, answers, "ann")
print(store._conn.count)
"""


def _decision_state(folder: Path) -> str:
    """'all' (both labels, both reviews done, leases freed), 'none' (nothing, ann's leases
    standing) or a description of the half-written state."""
    with Store.open(folder) as store:
        labels = len(store.annotations(source="human", kind="label"))
        queue = store.queue_counts()
        owners = {r[0] for r in store._read("SELECT lease_owner FROM queue")}
    if labels == 2 and queue == {"done": 2} and owners == {None}:
        return "all"
    if labels == 0 and queue == {"pending": 2} and owners == {"ann"}:
        return "none"
    return f"half: {labels} labels, queue {queue}, leases {owners}"


def test_a_kill_at_every_step_of_a_decision_leaves_all_of_it_or_none(tmp_path: Path) -> None:
    template = tmp_path / "template"
    with queued(template, n=2) as store:
        assert len(store.lease("ann", n=2)) == 2
    seen: dict[tuple[int, str], str] = {}
    step = 1
    while True:
        for when in ("before", "after"):
            folder = tmp_path / f"{step}-{when}"
            shutil.copytree(template, folder)
            proc = subprocess.run(
                [sys.executable, "-c", KILLED_WORKER, str(folder), str(step), when],
                cwd=REPO, capture_output=True, text=True, timeout=60,
            )
            if proc.returncode == 0:  # past the last statement: the decision ran to its end
                assert step == int(proc.stdout) + 1 and _decision_state(folder) == "all"
                assert seen[(step - 1, "before")] == "none", seen  # the commit was the last
                assert seen[(step - 1, "after")] == "all", seen
                return
            assert proc.returncode == -signal.SIGKILL, proc.stderr
            seen[(step, when)] = _decision_state(folder)
            assert seen[(step, when)] in ("all", "none"), (step, when, seen[(step, when)])
        step += 1
        assert step < 50, "the decision never finished"


# ---- two real processes ----------------------------------------------------------------------
# The worker skips the package __init__ (it pulls in sklearn and scipy, seconds of start-up on
# busy cores): it needs only the store, which is imported and run unchanged.
WORKER = """
import json, sys, time, types
from pathlib import Path
sys.modules["agent"] = types.ModuleType("agent")
sys.modules["agent"].__path__ = [str(Path.cwd() / "agent")]
from agent.store.sqlite import Store
from agent.types import Annotation, Kind, Source

folder, name = Path(sys.argv[1]), sys.argv[2]
leased = []
with Store.open(folder) as store:
    (folder / f"{name}.ready").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    while entries := store.lease(name, n=1, lease_seconds=600):
        for entry in entries:
            leased.append(entry.item_key)
            votes = [Annotation(k, "other", Source.MODEL, Kind.VOTE, actor=name) for k in (1, 2)]
            store.add_annotations(votes)
            store.add_annotations([Annotation(entry.item_key, "refund", Source.HUMAN, actor=name)])
            store.complete(entry.item_key, name)
            time.sleep(0.003)  # think time: SQLite's busy wait is not fair to a waiting writer
print(json.dumps(leased))
"""


def test_two_processes_lease_and_write_at_once_losing_nothing(tmp_path: Path) -> None:
    n = 40
    folder = tmp_path / "p"
    queued(folder, n=n).close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("ann", "bob")
    ]
    deadline = time.monotonic() + 60
    while not all((folder / f"{w}.ready").exists() for w in ("ann", "bob")):
        assert all(p.poll() is None for p in workers), [p.communicate() for p in workers]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (folder / "go").touch()
    outputs = [p.communicate(timeout=60) for p in workers]
    assert [p.returncode for p in workers] == [0, 0], outputs
    ann, bob = (json.loads(out) for out, _ in outputs)
    assert ann and bob, "both processes must have leased some items"
    assert not set(ann) & set(bob), "an item was leased by both processes"
    assert sorted(ann + bob) == list(range(1, n + 1))
    with Store.open(folder) as store:
        assert store.queue_counts() == {"done": n}
        assert len(store.annotations(source="human", kind="label")) == n
        assert len(store.annotations(source="model", kind="vote")) == 2 * n
        assert counts_by_source(store) == {"human": n}
