"""The command line on a PostgreSQL project: `init --store postgresql://...` makes it on the
server and leaves a pointer in the folder, and every later command opens it through the
folder; a wrong URL, a server that does not answer or a missing driver is one line, exit 2.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from typer.testing import CliRunner

from agent.app.cli import app
from agent.config import CONFIG_FILE
from agent.store.opening import STORE_FILE

REPO = Path(__file__).resolve().parents[1]
CORPUS = "id,text,label\na,where is my refund,refund\nb,lost it on the bus,card_lost\nc,hi,\n"


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    """The real program in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PGPASSWORD", None)
    return subprocess.run([sys.executable, "-m", "agent.app.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


def invoke(*args: object) -> tuple[int, str]:
    """The CLI in-process: (exit code, stderr); never a traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stderr


def test_init_import_status_export_through_the_real_program(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    project, url = tmp_path / "tickets", postgres_server.url()
    (tmp_path / "labels.txt").write_text("refund\ncard_lost\nother\n")
    (tmp_path / "in.csv").write_text(CORPUS)
    made = cli("init", project, "--labels", tmp_path / "labels.txt", "--store", url,
               "--embedding-model", "hashing")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert f"with 3 labels in {url}" in made.stderr
    assert json.loads((project / STORE_FILE).read_text()) == {"url": url}
    assert sorted(p.name for p in project.iterdir()) == [CONFIG_FILE, STORE_FILE]  # no SQLite
    imported = cli("import", project, tmp_path / "in.csv", "--id-col", "id", "--label-col", "label")
    assert imported.returncode == 0 and "imported 3 items" in imported.stderr, imported.stderr
    status = cli("status", project, "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert (info["items"], info["by_source"]) == (3, {"import": 2})
    exported = cli("export", project, tmp_path / "out.csv")
    assert exported.returncode == 0, exported.stderr
    with (tmp_path / "out.csv").open() as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"a", "b", "c"} and rows["a"]["final_label"] == "refund"
    again = cli("init", tmp_path / "other", "--labels", tmp_path / "labels.txt", "--store", url)
    assert again.returncode == 2 and "already exists in this database" in again.stderr
    assert not (tmp_path / "other").exists()  # the refused init left nothing behind


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://ann:pw@127.0.0.1:1/db?project=p&connect_timeout=2", "start the server"),
        ("postgresql://127.0.0.1/db?project=Not-A-Name", "cannot name a project"),
        ("postgresql://127.0.0.1/db?project=a&project=b", "name the project once"),
    ],
)
def test_a_bad_or_unreachable_url_is_one_line_and_exit_2(
    tmp_path: Path, url: str, says: str
) -> None:
    (tmp_path / "labels.txt").write_text("refund\nother\n")
    code, err = invoke("init", tmp_path / "p", "--labels", tmp_path / "labels.txt", "--store", url)
    assert code == 2 and says in err and "pw" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_a_missing_driver_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "labels.txt").write_text("refund\nother\n")
    for name in [m for m in sys.modules if m.startswith(("psycopg", "agent.store.postgres."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ModuleNotFoundError
    url = "postgresql://127.0.0.1/db?project=p"
    code, err = invoke("init", tmp_path / "p", "--labels", tmp_path / "labels.txt", "--store", url)
    assert code == 2 and "pip install 'labelagent[postgres]'" in err
    assert not (tmp_path / "p").exists()


def test_a_broken_pointer_is_one_line(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / STORE_FILE).write_text('{"host": "db"}')
    code, err = invoke("status", project)
    assert code == 2 and f'{STORE_FILE}: no "url" in it' in err


def test_a_run_on_postgresql_labels_exactly_as_on_sqlite(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Same seed, same data: the same final labels, sources and confidences on both stores."""
    support = REPO / "examples" / "support"
    exports = []
    for name, store in (("lite", []), ("pg", ["--store", postgres_server.url()])):
        project = tmp_path / name
        steps = [
            ["init", project, "--labels", support / "labels.json", "--embedding-model",
             "hashing", *store],
            ["import", project, support / "messages.csv", "--id-col", "id"],
            ["run", project, "--llm", "simulated:acc=0.85", "--oracle-file", support / "gold.csv",
             "--rounds", "2", "--batch-size", "20", "--human-budget", "20"],
            ["export", project, tmp_path / f"{name}.csv"],
        ]  # fmt: skip
        for step in steps:
            code, err = invoke(*step)
            assert code == 0, err
        with (tmp_path / f"{name}.csv").open() as handle:
            exports.append([{k: v for k, v in r.items() if k != "labelled_at"}
                            for r in csv.DictReader(handle)])  # fmt: skip
    lite, pg = exports
    assert len(pg) == 405 and pg == lite
    assert sum(r["final_source"] == "human" for r in pg) == 20
