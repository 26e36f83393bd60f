"""The `labelagent` command line: init, import, status, export, and bad input.

Bad input runs the real program (`python -m agent.app.cli`, and the installed console script) in
subprocesses, all at once to keep the wall time down; the rest goes through typer's CliRunner.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.config import CONFIG_FILE
from agent.store.sqlite import DB_FILE, Store
from agent.types import LabelSet

REPO = Path(__file__).resolve().parents[1]
BANKING77 = REPO.parent / "shared" / "datasets" / "banking77"
LABELS = LabelSet(("refund", "card_lost", "other"))
# Two new, valid rows: a bad row after them must take them down with it (one transaction).
GOOD = "id,text,label\nn1,where is my refund,refund\nn2,lost it on the bus,card_lost\n"


def invoke(*args: object) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


def seeded_project(folder: Path) -> Path:
    """A project with two items already imported, so that 'nothing written' is visible."""
    store = Store.create(folder, LABELS)
    store.add_items([("g1", "I want my money back", "refund"), ("g2", "card gone", None)])
    store.close()
    return folder


def counts(project: Path) -> tuple[int, int]:
    with Store.open(project) as store:
        return store.count_items(), len(store.annotations())


# ---- bad input through the real program ------------------------------------------------------
@dataclass(frozen=True)
class BadCase:
    """A file to import (written by `make` into the folder), CLI options, what stderr must say."""

    make: Callable[[Path], Path]
    options: tuple[str, ...]
    expect: tuple[str, ...]  # fragments besides the file path


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return write


ID, LABEL = ("--id-col", "id"), ("--id-col", "id", "--label-col", "label")
BAD_CASES = {
    "missing file": BadCase(lambda f: f / "absent.csv", (), ("no such file",)),
    "missing column": BadCase(
        _bytes("a.csv", GOOD.encode()), ("--text-col", "body"), ("field 'body'", "column")
    ),
    "whitespace-only text": BadCase(
        _bytes("a.csv", (GOOD + "g3,  \t  ,other\n").encode()),
        ID,
        ("row 3", "field 'text'", "whitespace-only text"),
    ),
    "non-UTF-8 bytes": BadCase(
        _bytes("a.csv", GOOD.encode() + b"g3,caf\xe9 cr\xe8me,other\n"),
        ID,
        ("row 3", "field 'text'", "not valid UTF-8"),
    ),
    "duplicate ids": BadCase(
        _bytes("a.csv", (GOOD + "n1,another text,other\n").encode()),
        ID,
        ("row 3", "field 'id'", "duplicate id 'n1' (first at row 1)"),
    ),
    "label outside the label set": BadCase(  # also: brackets in user data are not markup
        _bytes("a.csv", (GOOD + "g3,some text,[/chargeback]\n").encode()),
        LABEL,
        ("row 3", "field 'label'", "label '[/chargeback]' is not in the label set"),
    ),
    "malformed JSONL line": BadCase(
        _bytes("a.jsonl", b'{"text": "fine"}\n{"text": "fine too"}\n{"text": "oops"\n'),
        (),
        ("row 3", "malformed JSON"),
    ),
    "unreadable Parquet": BadCase(
        _bytes("a.parquet", b"PAR1" + bytes(range(256)) * 4), (), ("unreadable Parquet",)
    ),
}


@dataclass(frozen=True)
class Run:
    path: Path
    returncode: int
    stdout: str
    stderr: str
    before: tuple[int, int]
    after: tuple[int, int]


def _program(case: str) -> list[str]:
    """`python -m agent.app.cli`, except one case through the installed console script."""
    script = Path(sys.executable).with_name("labelagent")
    if case == "unreadable Parquet" and script.exists():
        return [str(script)]
    return [sys.executable, "-m", "agent.app.cli"]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every bad case in its own project, all processes started together."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHONWARNINGS")}
    started = {}
    for case, bad in BAD_CASES.items():
        folder = tmp_path_factory.mktemp("bad")
        project = seeded_project(folder / "proj")
        path = bad.make(folder)
        before = counts(project)
        process = subprocess.Popen(
            [*_program(case), "import", str(project), str(path), *bad.options],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[case] = (process, path, project, before)
    runs = {}
    for case, (process, path, project, before) in started.items():
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        after = counts(project)
        runs[case] = Run(path, process.returncode, out, err, before, after)
    return runs


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_line_naming_file_row_field(
    bad_runs: dict[str, Run], case: str
) -> None:
    run = bad_runs[case]
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    assert run.returncode == 2, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: {run.path}")
    for fragment in BAD_CASES[case].expect:
        assert fragment in lines[0]
    assert run.after == run.before  # nothing half-written: the import was one transaction


def test_a_missing_or_corrupt_project_or_label_file_is_one_line_too(tmp_path: Path) -> None:
    code, _, err = invoke("status", tmp_path / "nowhere")
    assert (code, len(err.splitlines())) == (2, 1) and "not a labelagent project" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / DB_FILE).write_bytes(b"garbage, not SQLite " * 100)
    code, _, err = invoke("status", tmp_path / "bad")
    assert (code, len(err.splitlines())) == (2, 1) and "not a labelagent database" in err
    code, _, err = invoke("init", tmp_path / "p", "--labels", tmp_path / "labels.yaml")
    assert (code, err.strip()) == (2, f"error: {tmp_path / 'labels.yaml'}: no such file")
    (tmp_path / "dup.txt").write_text("a\nb\na\n", encoding="utf-8")
    code, _, err = invoke("init", tmp_path / "p", "--labels", tmp_path / "dup.txt")
    assert code == 2 and "row 3, field 'name': duplicate label 'a'" in err
    assert not (tmp_path / "p" / DB_FILE).exists()


def test_user_data_with_line_breaks_still_gives_one_line(tmp_path: Path) -> None:
    project = seeded_project(tmp_path / "proj")
    data = tmp_path / "a.csv"
    data.write_text('id,text,label\nx1,fine,"ref\nund"\n', encoding="utf-8")
    code, _, err = invoke("import", project, data, "--id-col", "id", "--label-col", "label")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "row 1, field 'label': label 'ref\\nund' is not in the label set" in err


# ---- init, import, status, export ------------------------------------------------------------
def test_init_creates_the_store_and_config_and_refuses_a_second_init(tmp_path: Path) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text("refund: wants money back\ncard_lost: card is gone\n", encoding="utf-8")
    project = tmp_path / "proj"
    code, _, err = invoke("init", project, "--labels", labels, "--embedding-model", "hashing")
    assert code == 0, err
    assert sorted(p.name for p in project.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        CONFIG_FILE,
        DB_FILE,
    ]
    assert json.loads((project / CONFIG_FILE).read_text())["embedding_model"] == "hashing"
    with Store.open(project) as store:
        assert store.label_set.describe("card_lost") == "card is gone"
    code, _, err = invoke("init", project, "--labels", labels)
    assert code == 2 and err.count("\n") == 1 and "a project already exists here" in err


def status_json(project: Path) -> dict[str, Any]:
    code, out, err = invoke("status", project, "--json")
    assert code == 0, err
    status: dict[str, Any] = json.loads(out)
    assert {"items", "labelled", "by_source", "queue", "estimated_accuracy"} <= set(status)
    return status


def test_import_twice_then_status_json_and_export(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    Store.create(project, LABELS).close()
    data = tmp_path / "more.csv"
    data.write_text("id,text,label\nm1,hi there,\nm2,money please,refund\n", encoding="utf-8")
    assert invoke("import", project, data, "--id-col", "id")[0] == 0
    status = status_json(project)  # items, but no label of any kind: nothing to estimate from
    assert (status["items"], status["labelled"], status["by_source"]) == (2, 0, {})
    assert (status["queue"], status["estimated_accuracy"]) == (0, None)

    more = tmp_path / "seeds.csv"
    more.write_text("id,text,label\ns1,card gone,card_lost\n", encoding="utf-8")
    code, _, err = invoke("import", project, more, "--id-col", "id", "--label-col", "label")
    assert code == 0 and "imported 1 items (0 already present, 1 seed labels)" in err
    code, _, err = invoke("import", project, more, "--id-col", "id", "--label-col", "label")
    assert code == 0 and "imported 0 items (1 already present, 0 seed labels)" in err
    status = status_json(project)
    assert (status["items"], status["labelled"], status["by_source"]) == (3, 1, {"import": 1})
    # imported labels are an assumption, not a measurement: still no estimate
    assert status["estimated_accuracy"] is None
    code, out, _ = invoke("status", project)
    assert code == 0 and "items" in out and "labelled" in out

    code, _, err = invoke("export", project, tmp_path / "out" / "labels.csv")
    assert code == 0 and "wrote 3 items (1 labelled)" in err
    with (tmp_path / "out" / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["label"]) for r in rows] == [("m1", ""), ("m2", ""), ("s1", "card_lost")]
    assert (tmp_path / "out" / "labels.csv.summary.json").is_file()


# ---- the "done when" round trip on a real dataset --------------------------------------------
@pytest.mark.skipif(not (BANKING77 / "train.csv").is_file(), reason="banking77 not on disk")
def test_banking77_round_trip_loses_nothing(tmp_path: Path) -> None:
    started = time.perf_counter()
    source = tmp_path / "train.csv"
    shutil.copyfile(BANKING77 / "train.csv", source)  # a temp copy: ids derive from its name
    project = tmp_path / "proj"
    assert invoke("init", project, "--labels", BANKING77 / "labels.json")[0] == 0
    code, _, err = invoke("import", project, source, "--label-col", "label")
    assert code == 0, err

    with source.open(encoding="utf-8", newline="") as handle:
        original = list(csv.DictReader(handle))
    status = status_json(project)
    assert len(original) == 10_003
    assert (status["items"], status["labelled"]) == (10_003, 10_003)
    assert status["by_source"] == {"import": 10_003}

    assert invoke("export", project, tmp_path / "all.jsonl")[0] == 0
    lines = (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()
    exported = [json.loads(line) for line in lines]
    assert [(r["text"], r["label"]) for r in exported] == [
        (r["text"], r["label"]) for r in original
    ]
    assert {r["source"] for r in exported} == {"import"}
    assert len({r["id"] for r in exported}) == 10_003

    code, _, err = invoke("import", project, source, "--label-col", "label")
    assert code == 0 and "imported 0 items (10003 already present, 0 seed labels)" in err
    assert counts(project) == (10_003, 10_003)
    assert time.perf_counter() - started < 20
