"""No tracebacks, by construction and by test (issue 15, items 4 and 5).

Property-based: hypothesis makes broken label files, corpora in each format, configs, project
folders and OS errors at any file-system call, and every command must keep the CLI's promise:
exit 0 or 2, no traceback, a refusal is one line naming the path, and a refused command leaves
the project's database as it was (sha256) with no `.partial` or stray file. What a command
accepts must be usable: `init` stores only label sets that can be classified, `import` only
texts and ids that are clean. The CLI runs in-process (typer's CliRunner) to stay fast; the
faults that need a real process (pipes, a full disk, no permission) run as subprocesses.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fault_kit import (
    cli,
    configs,
    corpora,
    db_digest,
    failing,
    label_files,
    leftovers,
    names_a_path_near,
    refused,
    workspace,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.app.faults import describe
from agent.config import CONFIG_FILE, ProjectConfig
from agent.store.sqlite import DB_FILE, Store
from agent.types import LabelSet

REPO = Path(__file__).resolve().parents[1]
LABELS = LabelSet(("refund", "card_lost", "other"))
FAST = {
    "deadline": None,
    "database": None,  # nothing written into the repository
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


def examples(n: int) -> int:
    """`n` examples, times FAULTS_SCALE from the environment for a deeper search."""
    return max(1, int(n * float(os.environ.get("FAULTS_SCALE", "1"))))


GOOD_CORPUS = "id,text\nn1,where is my refund\nn2,lost it on the bus\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small project (hashing embedder) with items and seed labels, copied per example."""
    folder = tmp_path_factory.mktemp("template") / "proj"
    with Store.create(folder, LABELS) as store:
        texts = ["money back please", "card gone", "hello", "refund now", "lost my card"] * 3
        labels = ["refund", "card_lost", None, None, None] * 3
        store.add_items((f"g{i}", f"{t} {i}", lab) for i, (t, lab) in enumerate(zip(texts, labels)))
    ProjectConfig(embedding_model="hashing").save(folder)
    return folder


# ---- init: only label sets that can be classified ----------------------------------------------
INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def assert_usable(labels: LabelSet) -> None:
    """What every later step relies on, written out independently of the checks in the app."""
    assert len(labels) >= 2
    keys = [" ".join(unicodedata.normalize("NFKC", n).casefold().split()) for n in labels.names]
    assert len(set(keys)) == len(keys) and "__abstain__" not in keys
    for name, description in zip(labels.names, labels.descriptions):
        assert name == name.strip() and 0 < len(name) <= 100, repr(name)
        assert not {unicodedata.category(ch) for ch in name} & INVISIBLE, repr(name)
        assert isinstance(description, str) and len(description) <= 1000
        assert all(ch in "\t\n\r" or (ord(ch) >= 32 and ord(ch) != 127) for ch in description)


@settings(max_examples=examples(150), **FAST)
@given(label_files(), st.booleans())
def test_init_stores_a_usable_label_set_or_nothing(
    tmp_path: Path, label_file: tuple[str, bytes], folder_exists: bool
) -> None:
    with workspace(tmp_path) as ws:
        name, data = label_file
        labels, project = ws / name, ws / "proj"
        labels.write_bytes(data)
        if folder_exists:
            project.mkdir()
        outcome = cli("init", project, "--labels", labels, "--embedding-model", "hashing")
        if refused(outcome, names=str(labels)):
            assert (os.listdir(project) == []) if folder_exists else not project.exists()
            return
        with Store.open(project) as store:
            assert_usable(store.label_set)


# ---- import: clean rows or nothing -------------------------------------------------------------
ID_OPTIONS = st.sampled_from([(), ("--id-col", "id"), ("--id-col", "id", "--label-col", "label")])


@settings(max_examples=examples(150), **FAST)
@given(corpora(), ID_OPTIONS)
def test_import_takes_clean_rows_or_nothing(
    tmp_path: Path, template: Path, corpus: tuple[str, bytes], options: tuple[str, ...]
) -> None:
    with workspace(tmp_path, template) as ws:
        suffix, data = corpus
        path, project = ws / f"corpus{suffix}", ws / "proj"
        path.write_bytes(data)
        before = db_digest(project / DB_FILE)
        if refused(cli("import", project, path, *options), names=str(path)):
            assert db_digest(project / DB_FILE) == before
            return
        with Store.open(project) as store:
            for item in store.items():
                assert isinstance(item.text, str) and item.text.strip(), item
                assert not any(_control(c) for c in item.text), item
                assert item.id == item.id.strip() and item.id, item
                assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in item.id)


def _control(ch: str) -> bool:
    return (ord(ch) < 32 and ch not in "\t\n\r") or ord(ch) == 127


# ---- configs -------------------------------------------------------------------------------
@settings(max_examples=examples(60), **FAST)
@given(configs(), st.sampled_from(["status", "export"]))
def test_a_broken_config_is_one_line_and_touches_nothing(
    tmp_path: Path, template: Path, config: bytes, command: str
) -> None:
    with workspace(tmp_path, template) as ws:
        project, out = ws / "proj", ws / "out" / "labels.csv"
        (project / CONFIG_FILE).write_bytes(config)
        before = db_digest(project / DB_FILE)
        args = [project, "--json"] if command == "status" else [project, out]
        if refused(cli(command, *args)):
            assert db_digest(project / DB_FILE) == before
            assert not out.parent.exists() and not leftovers(ws)


# ---- project folders -------------------------------------------------------------------------
def _replace_with_folder(path: Path) -> None:
    if path.exists():
        path.unlink()
    path.mkdir()


def _cut(path: Path, noise: bytes) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: (len(noise) * 4099) % len(data)])


def _flip(path: Path, noise: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = (len(noise) * 7919) % (len(data) - len(noise))
    data[at : at + len(noise)] = noise
    path.write_bytes(bytes(data))


Fault = Callable[[Path, bytes], Any]
DB, WAL, SHM = DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm"
# Refused at the door: the database must stay byte for byte as it was.
AT_THE_DOOR: dict[str, Fault] = {
    "no database": lambda p, b: (p / DB).unlink(),
    "database is a folder": lambda p, b: _replace_with_folder(p / DB),
    "database is empty": lambda p, b: (p / DB).write_bytes(b""),
    "database is random bytes": lambda p, b: (p / DB).write_bytes(b),
    "config is a folder": lambda p, b: _replace_with_folder(p / CONFIG_FILE),
    "config is a dangling link": lambda p, b: ((p / CONFIG_FILE).unlink(),
                                               (p / CONFIG_FILE).symlink_to(p / "gone")),
    "project is a file": lambda p, b: (shutil.rmtree(p), p.write_bytes(b)),
    "project is missing": lambda p, b: shutil.rmtree(p),
}  # fmt: skip
# Damage SQLite finds later, or not at all: the promise is one line, exit 0 or 2.
DAMAGE: dict[str, Fault] = {
    "database cut off": lambda p, b: _cut(p / DB, b),
    "database bytes overwritten": lambda p, b: _flip(p / DB, b),
    "wal is a folder": lambda p, b: (p / WAL).mkdir(),
    "shm is a folder": lambda p, b: (p / SHM).mkdir(),
    "wal is garbage": lambda p, b: (p / WAL).write_bytes(b * 64),
}
COMMANDS: dict[str, Callable[[Path, Path], list[object]]] = {
    "status": lambda p, ws: ["status", p, "--json"],
    "import": lambda p, ws: ["import", p, ws / "more.csv", "--id-col", "id"],
    "export": lambda p, ws: ["export", p, ws / "out" / "labels.jsonl"],
    "run": lambda p, ws: ["run", p, "--llm", "none", "--rounds", "1", "--batch-size", "4"],
}


@settings(max_examples=examples(60), **FAST)
@given(
    st.sampled_from(sorted({**AT_THE_DOOR, **DAMAGE})),
    st.sampled_from(sorted(COMMANDS)),
    st.binary(min_size=1, max_size=64),
)
def test_a_broken_project_folder_is_one_line(
    tmp_path: Path, template: Path, fault: str, command: str, noise: bytes
) -> None:
    with workspace(tmp_path, template) as ws:
        project = ws / "proj"
        (ws / "more.csv").write_text(GOOD_CORPUS, encoding="utf-8")
        {**AT_THE_DOOR, **DAMAGE}[fault](project, noise)
        before = db_digest(project / DB)
        outcome = cli(*COMMANDS[command](project, ws))
        if refused(outcome, chatty=command == "run") and fault in AT_THE_DOOR:
            assert db_digest(project / DB) == before
            assert not (ws / "out").exists() and not leftovers(ws)


# ---- an OS error at any file-system call -------------------------------------------------------
ERRNOS = [errno.EACCES, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC, errno.EROFS, errno.ENOENT,
          errno.EIO, errno.EMFILE]  # fmt: skip
CALLS = ["open", "mkdir", "replace", "stat", "read_bytes", "write_text"]


@settings(max_examples=examples(150), **FAST)
@given(
    st.sampled_from(["init", "import", "status", "export"]),
    st.sampled_from(CALLS),
    st.sampled_from(ERRNOS),
    st.integers(1, 5),
    st.booleans(),
)
def test_an_os_error_anywhere_is_one_line_naming_a_path(
    tmp_path: Path, template: Path, command: str, call: str, code: int, number: int, named: bool
) -> None:
    with workspace(tmp_path, template) as ws:
        project, out = ws / "proj", ws / "new" / "deeper" / "labels.csv"
        (ws / "labels.txt").write_text("refund\ncard_lost\n", encoding="utf-8")
        (ws / "more.csv").write_text(GOOD_CORPUS, encoding="utf-8")
        args: list[object] = {
            "init": ["init", ws / "fresh", "--labels", ws / "labels.txt"],
            "import": ["import", project, ws / "more.csv", "--id-col", "id"],
            "status": ["status", project, "--json"],
            "export": ["export", project, out],
        }[command]
        before = db_digest(project / DB)
        with failing(call, number, code, named):
            outcome = cli(*args)
        if refused(outcome):
            assert names_a_path_near(outcome.line, ws)
            assert db_digest(project / DB) == before
            assert not leftovers(ws) and not (ws / "fresh").exists() and not (ws / "new").exists()


# ---- the real program: pipes, a full disk, no permission ------------------------------------
def _without_override() -> list[str] | None:
    """A command prefix under which permission bits bind: root drops the capabilities that
    let it read and write anything; anyone else needs none. None: they cannot bind here."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    drop = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]


@pytest.fixture
def shared(tmp_path: Path, template: Path) -> Iterator[Path]:
    """tmp_path with a copy of the template project, writable again afterwards."""
    shutil.copytree(template, tmp_path / "proj")
    yield tmp_path
    for path in (tmp_path, *tmp_path.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def _setup(ws: Path) -> dict[str, tuple[list[object], str, bool]]:
    """case -> (arguments, what the one line says, whether permission bits must bind)."""
    proj, locked = ws / "proj", ws / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    (ws / "labels.txt").write_text("refund\nother\n", encoding="utf-8")
    (ws / "secret.txt").write_text("refund\nother\n", encoding="utf-8")
    (ws / "secret.txt").chmod(0)
    for fifo in ("pipe.txt", "pipe.csv"):
        os.mkfifo(ws / fifo)
    (ws / "full.csv.partial").symlink_to("/dev/full")
    return {
        "label file is a pipe": (["init", ws / "p1", "--labels", ws / "pipe.txt"], "pipe", False),
        "corpus is a pipe": (["import", proj, ws / "pipe.csv"], "pipe", False),
        "oracle file is a folder": (
            ["run", proj, "--llm", "none", "--rounds", "1", "--oracle-file", ws], "folder", False
        ),
        "export onto a full disk": (["export", proj, ws / "full.csv"], "no space left", False),
        "init in a read-only folder": (
            ["init", locked / "p", "--labels", ws / "labels.txt"], "permission denied", True
        ),
        "export into a read-only folder": (
            ["export", proj, locked / "out.csv"], "permission denied", True
        ),
        "label file not readable": (
            ["init", ws / "p2", "--labels", ws / "secret.txt"], "permission denied", True
        ),
    }


def test_the_real_program_refuses_pipes_full_disks_and_locked_places(shared: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHONWARNINGS")}
    before = db_digest(shared / "proj" / DB)
    prefix = _without_override()
    cases = {
        case: spec for case, spec in _setup(shared).items() if prefix is not None or not spec[2]
    }
    procs = {
        case: subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "agent.app.cli", *map(str, args)],
            cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for case, (args, _, _) in cases.items()
    }  # fmt: skip
    for case, process in procs.items():
        _, err = process.communicate(timeout=120)
        assert "Traceback" not in err, (case, err)
        assert process.returncode == 2 and len(err.strip().splitlines()) == 1, (case, err)
        assert cases[case][1] in err, (case, err)
    assert db_digest(shared / "proj" / DB) == before
    assert not leftovers(shared) and not (shared / "full.csv").exists()
    assert not {"p1", "p2"} & set(os.listdir(shared)) and os.listdir(shared / "locked") == []


# ---- wrong kinds of paths, the edge itself ------------------------------------------------------
def _wrong_kinds(ws: Path) -> dict[str, tuple[list[object], str]]:
    """case -> (arguments, what the one line says)."""
    (ws / "folder.json").mkdir()
    (ws / "folder.csv").mkdir()
    (ws / "a_file").write_text("x", encoding="utf-8")
    (ws / "labels.txt").write_text("refund\nother\n", encoding="utf-8")
    (ws / "corpus.jsonl").write_text('{"text": "hello"}\n', encoding="utf-8")
    proj = ws / "proj"
    return {
        "label file is a folder": (["init", ws / "p", "--labels", ws / "folder.json"], "folder"),
        "label file is a corpus": (["init", ws / "p", "--labels", ws / "corpus.jsonl"],
                                   "did you mean 'labelagent import'"),
        "corpus is a folder": (["import", proj, ws / "folder.csv"], "is a folder"),
        "export onto a folder": (["export", proj, ws / "folder.csv"], "is a folder"),
        "export below a file": (["export", proj, ws / "a_file" / "o.csv"], "is a file"),
        "project is a file": (["init", ws / "a_file", "--labels", ws / "labels.txt"],
                              "not a folder"),
        "project below a file": (["init", ws / "a_file" / "p", "--labels", ws / "labels.txt"],
                                 "is a file, not a folder"),
    }  # fmt: skip


def test_wrong_kinds_of_paths_are_one_line_and_make_nothing(tmp_path: Path, template: Path) -> None:
    with workspace(tmp_path, template) as ws:
        cases = _wrong_kinds(ws)
        before, listing = db_digest(ws / "proj" / DB), sorted(os.listdir(ws))
        for case, (args, fragment) in cases.items():
            outcome = cli(*args)
            assert refused(outcome, names=str(args[1] if case.startswith("project") else ws))
            assert fragment in outcome.line, (case, outcome.line)
        assert db_digest(ws / "proj" / DB) == before and sorted(os.listdir(ws)) == listing


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/x/f"), "/x/f: permission denied"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/x/f"), "/x/f: is a folder"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/x/f"), "/x/f: a part of"),
        (OSError(errno.ENOSPC, "No space left on device"), "/proj: no space left"),
        (OSError(errno.EROFS, "Read-only file system", "/x/f"), "/x/f: read-only file system"),
        (FileNotFoundError(errno.ENOENT, "No such file", "/x/f"), "/x/f: no such file or folder"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/x/f"), "/x/f: invalid cross-device"),
        (sqlite3.OperationalError("database is locked"), f"/proj/{DB}: the database is busy"),
        (sqlite3.OperationalError("database or disk is full"), f"/proj/{DB}: no space left"),
        (sqlite3.DatabaseError("database disk image is malformed"), "the database is damaged"),
        (sqlite3.OperationalError("disk I/O error"), "disk I/O error on the database"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "/proj: cannot decode"),
    ],
)
def test_the_edge_says_what_happened_where_and_what_to_do(error: Exception, says: str) -> None:
    line = describe(error, Path("/proj"))
    assert line is not None and says in line and "\n" not in line
    assert ";" in line  # what happened; what to do
    assert describe(ZeroDivisionError("a bug"), Path("/proj")) is None


def test_a_bug_is_one_line_exit_1_and_its_traceback_on_request(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    args = ["init", tmp_path / "p", "--labels", tmp_path / "labels.txt"]
    with mock.patch("agent.app.cli.load_label_set", side_effect=ZeroDivisionError("a bug")):
        outcome = cli(*args)
        assert outcome.code == 1 and outcome.exception is None
        assert outcome.line.startswith("error: internal error (ZeroDivisionError: a bug)")
        assert len(outcome.stderr.strip().splitlines()) == 1
        with mock.patch.dict(os.environ, {"LABELAGENT_DEBUG": "1"}):
            assert isinstance(cli(*args).exception, ZeroDivisionError)
