"""A store that knows its own files (issue 15): `init` creates, every other command opens only
what `init` made; anything else is refused with one line and left byte-identical. A project
without write permission opens read-only: `status` and `export` work, a write says why not.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.app.status import project_status
from agent.errors import StoreError
from agent.store.schema import APPLICATION_ID
from agent.store.sqlite import DB_FILE, Store
from agent.types import LabelSet

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "support"
LABELS = LabelSet(("refund", "card_lost", "other"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sqlite(path: Path, script: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()


FOREIGN: dict[str, Callable[[Path], None]] = {
    "zero bytes": lambda p: p.write_bytes(b""),
    "not a database": lambda p: p.write_bytes(b"id,text\n1,hello\n" * 300),
    "random bytes": lambda p: p.write_bytes(os.urandom(8192)),
    "sqlite header, garbage after": lambda p: p.write_bytes(
        b"SQLite format 3\x00" + os.urandom(4000)
    ),
    "another application's database": lambda p: _sqlite(
        p, "PRAGMA application_id = 1234567; CREATE TABLE notes(x); INSERT INTO notes VALUES (1);"
    ),
    "a database without an id and other tables": lambda p: _sqlite(
        p, "PRAGMA user_version = 1; CREATE TABLE customers(name TEXT, city TEXT);"
    ),
    "an empty sqlite database": lambda p: _sqlite(p, "PRAGMA user_version = 0; VACUUM;"),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_open_refuses_what_init_did_not_make_and_leaves_it_byte_identical(
    tmp_path: Path, kind: str
) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    FOREIGN[kind](folder / DB_FILE)
    before = sha256(folder / DB_FILE)
    with pytest.raises(StoreError) as refused:
        Store.open(folder)
    assert "\n" not in str(refused.value) and DB_FILE in str(refused.value)
    assert "labelagent" in str(refused.value)
    for args in (
        ["status", folder],
        ["export", folder, tmp_path / "out.csv"],
        ["import", folder, EXAMPLES / "messages.csv", "--id-col", "id"],
        ["run", folder, "--llm", "none", "--rounds", "1"],
    ):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.output
    assert sha256(folder / DB_FILE) == before
    assert sorted(os.listdir(folder)) == [DB_FILE]  # no journal, WAL or index left beside it
    assert not (tmp_path / "out.csv").exists()


def test_a_project_init_made_carries_the_application_id(tmp_path: Path) -> None:
    Store.create(tmp_path / "p", LABELS).close()
    conn = sqlite3.connect(tmp_path / "p" / DB_FILE)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


def test_readonly_store_reads_everything_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    with Store.create(tmp_path / "p", LABELS) as store:
        store.add_items([("a", "money back please", "refund"), ("b", "card gone", None)])
    before = sha256(tmp_path / "p" / DB_FILE)
    with Store.open(tmp_path / "p", readonly=True) as store:
        assert store.readonly and store.label_set == LABELS and store.count_items() == 2
        assert project_status(store)["labelled"] == 1
        for write in (
            lambda: store.add_items([("c", "new", None)]),
            lambda: store.set_meta("x", 1),
            lambda: store.acquire_run_lock("run"),
        ):
            with pytest.raises(StoreError, match="cannot write \\(opened read-only\\)") as exc:
                write()
            assert "\n" not in str(exc.value) and "write permission" in str(exc.value)
    assert sha256(tmp_path / "p" / DB_FILE) == before


def _without_override() -> list[str]:
    """A command prefix under which permission bits bind: root drops the capabilities that
    let it write anything (CAP_DAC_OVERRIDE, CAP_FOWNER); anyone else needs none."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: permission bits cannot bind")
    drop = "-dac_override,-fowner"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]


@pytest.fixture
def writable_again(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, made writable again afterwards so that pytest can clean it up."""
    yield tmp_path
    for path in (tmp_path, *tmp_path.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_project_without_write_permission_opens_readonly(writable_again: Path) -> None:
    project, out = writable_again / "p", writable_again / "out"
    cli = [sys.executable, "-m", "agent.app.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([*cli, "init", project, "--labels", EXAMPLES / "labels.json",
                    "--embedding-model", "hashing"], check=True, env=env, capture_output=True)
    subprocess.run([*cli, "import", project, EXAMPLES / "messages.csv", "--id-col", "id"],
                   check=True, env=env, capture_output=True)
    out.mkdir()
    (project / DB_FILE).chmod(0o444)
    project.chmod(0o555)
    before = sha256(project / DB_FILE)
    prefix = _without_override()
    commands = {
        "status": ["status", project, "--json"],
        "export": ["export", project, out / "labels.csv"],
        "import": ["import", project, EXAMPLES / "messages.csv", "--id-col", "id"],
        "run": ["run", project, "--llm", "none", "--rounds", "1"],
    }
    procs = {
        name: subprocess.Popen([*prefix, *cli, *map(str, args)], cwd=REPO, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, args in commands.items()
    }
    outputs = {name: p.communicate(timeout=120) for name, p in procs.items()}
    done = {name: (procs[name].returncode, *outputs[name]) for name in procs}
    assert done["status"][0] == 0 and '"items": 405' in done["status"][1], done["status"]
    assert done["export"][0] == 0 and (out / "labels.csv").exists(), done["export"]
    for name in ("import", "run"):
        code, _, err = done[name]
        assert code == 2 and len(err.strip().splitlines()) == 1, (name, err)
        assert "no write permission" in err and "Traceback" not in err, (name, err)
    assert sha256(project / DB_FILE) == before
    assert sorted(os.listdir(project)) == sorted([DB_FILE, "labelagent.json"])
