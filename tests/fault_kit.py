"""Broken inputs of every kind for tests/test_cli_faults.py, and the CLI's promise as a check.

The strategies make label files, corpora (CSV, JSONL, Parquet) and configs that are almost
right (wrong types, nested values, control characters, padding, case twins, reserved names)
or plainly wrong (random bytes, truncation, a corpus where labels belong), so that the
shrunk counterexample of a failure is a small file that reads like a bug report.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import pathlib
import shutil
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from typer.testing import CliRunner

from agent.app.cli import app
from agent.config import ProjectConfig

# SQLite's file change counter and its copy (bytes 24-27 and 92-95 of the header) move on
# every write transaction, also on one that changes nothing: today `Store.open` runs its
# migration check as one. Every other byte of a refused command's project must stay put.
COUNTER_BYTES = ((24, 28), (92, 96))


def db_digest(path: Path) -> str | None:
    """sha256 of the database file with the change counter zeroed; None where no file is."""
    if not path.is_file():
        return None
    data = bytearray(path.read_bytes())
    for start, end in COUNTER_BYTES:
        if len(data) >= end:
            data[start:end] = bytes(end - start)
    return hashlib.sha256(bytes(data)).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What one in-process CLI call did."""

    code: int
    stdout: str
    stderr: str
    exception: BaseException | None  # raised through the CLI's edge: always a failure

    @property
    def line(self) -> str:
        return self.stderr.strip()


def cli(*args: object) -> Outcome:
    """Run the real typer app in-process (CliRunner): the same code as the console script."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    raised = result.exception
    return Outcome(
        result.exit_code,
        result.stdout,
        result.stderr,
        None if raised is None or isinstance(raised, SystemExit) else raised,
    )


def refused(outcome: Outcome, names: str | None = None, chatty: bool = False) -> bool:
    """Assert the CLI's promise: exit 0 or 2, no traceback, and a refusal is one line starting
    with 'error:' (naming `names` where given); a `chatty` command (run) may print progress
    before it. Returns whether the command was refused."""
    if outcome.exception is not None:
        shown = "".join(traceback.format_exception(outcome.exception))
        raise AssertionError(f"an exception crossed the CLI's edge:\n{shown}")
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome.stderr
    assert outcome.code in (0, 2), (outcome.code, outcome.stderr)
    with contextlib.suppress(InvalidArgument):  # outside a hypothesis test: no statistics
        event(f"exit {outcome.code}")
    if outcome.code == 0:
        return False
    lines = outcome.stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), outcome.stderr
    assert errors[0] == lines[-1] and (chatty or len(lines) == 1), outcome.stderr
    if names is not None:
        assert names in errors[0], (names, errors[0])
    return True


# ---- places and faults ----------------------------------------------------------------
@contextmanager
def workspace(base: Path, template: Path | None = None) -> Iterator[Path]:
    """A fresh folder per example (with a copy of the template project as `proj`)."""
    with tempfile.TemporaryDirectory(dir=base) as name:
        folder = Path(name)
        if template is not None:
            shutil.copytree(template, folder / "proj")
        yield folder


def leftovers(folder: Path) -> list[Path]:
    """Half-written files anywhere under `folder`."""
    return [p for p in folder.rglob("*") if p.name.endswith(".partial")]


@contextmanager
def failing(call: str, number: int, code: int, named: bool) -> Iterator[None]:
    """`Path.<call>` raises OSError(`code`) on its `number`-th use, like the OS would (with
    the path as file name, or with none, like a failed write())."""
    real = getattr(pathlib.Path, call)
    seen = [0]

    def fake(self: Path, *args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] == number:
            raise OSError(code, os.strerror(code), str(self) if named else None)
        return real(self, *args, **kwargs)

    with mock.patch.object(pathlib.Path, call, fake):
        yield


def names_a_path_near(line: str, ws: Path) -> bool:
    """Whether the one line names a path inside `ws` or one of its folders."""
    named = Path(line.removeprefix("error: ").split(":")[0].split(",")[0])
    return named == ws or ws in named.parents or named in ws.parents


# ---- values --------------------------------------------------------------------------------
PIECES = st.sampled_from(
    ["refund", "card lost", "Refund", "other", "a money back request.", "__abstain__",
     "x" * 120, "\x00", "\x1b[31m", "\t", " ", "\n", "\r\n", "\u200b", "\x85", "\x7f", "é",
     "[/red]", "'", '"', ","]
)  # fmt: skip
WEIRD_TEXT = st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=4).map("".join)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), WEIRD_TEXT
)
JSON_VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(WEIRD_TEXT, inner, max_size=3),
    max_leaves=5,
)
GOOD_CELLS = st.sampled_from(["plain text one", "plain text two", "refund", "other", "r1", "7"])
CELL = st.one_of(GOOD_CELLS, GOOD_CELLS, JSON_VALUE)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` as it is, cut off, with random bytes put in, or with random bytes instead."""
    how = draw(st.sampled_from(["keep"] * 4 + ["truncate", "insert", "replace"]))
    at = draw(st.integers(0, len(data)))
    if how == "truncate":
        return data[:at]
    if how == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if how == "replace":
        return draw(st.binary(max_size=200))
    return data


# ---- corpora -------------------------------------------------------------------------------
ROWS = st.lists(st.fixed_dictionaries({"id": CELL, "text": CELL, "label": CELL}), max_size=5)


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text", "label"])
    for row in rows:
        writer.writerow(["" if v is None else str(v) for v in row.values()])
    return buffer.getvalue().encode("utf-8")


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


PARQUET_COLUMNS = {
    "string": (st.one_of(st.none(), WEIRD_TEXT, GOOD_CELLS), pa.string()),
    "int": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
    "float": (st.floats(), pa.float64()),
    "bool": (st.booleans(), pa.bool_()),
    "binary": (st.binary(max_size=8), pa.binary()),
    "list": (st.lists(WEIRD_TEXT, max_size=2), pa.list_(pa.string())),
    "struct": (st.fixed_dictionaries({"a": WEIRD_TEXT}), pa.struct([("a", pa.string())])),
}


@st.composite
def parquet_bytes(draw: st.DrawFn) -> bytes:
    """A Parquet file whose id, text and label columns each have a drawn type."""
    n = draw(st.integers(0, 4))
    columns = {}
    for name in ("id", "text", "label"):
        kind = draw(st.sampled_from(["string", "string", *PARQUET_COLUMNS]))
        values, arrow_type = PARQUET_COLUMNS[kind]
        columns[name] = pa.array(draw(st.lists(values, min_size=n, max_size=n)), arrow_type)
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


@st.composite
def corpora(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes) of a corpus in one of the three formats, maybe broken."""
    suffix = draw(st.sampled_from([".csv", ".jsonl", ".parquet"]))
    if suffix == ".parquet":
        data = draw(parquet_bytes())
    else:
        data = (csv_bytes if suffix == ".csv" else jsonl_bytes)(draw(ROWS))
    return suffix, draw(mutated(data))


# ---- label files ---------------------------------------------------------------------------
GOOD_NAMES = st.one_of(
    st.sampled_from(["refund", "card_lost", "other", "billing", "PIN change", "Neutral"]),
    st.text("abcdefghij_", min_size=1, max_size=12),
)
NAMES = st.one_of(
    st.sampled_from(
        ["refund", "card_lost", "other", "Refund", " refund", "refund ", "card  lost",
         "card lost", "__abstain__", "__ABSTAIN__", "x" * 101, "a\x00b", "a\x1bb", "a\u200bb",
         "", "   ", "1", "yes"]
    ),
    WEIRD_TEXT,
    JSON_VALUE,
)  # fmt: skip
DESCRIPTIONS = st.one_of(st.sampled_from(["", "wants money back", "d" * 1001]), JSON_VALUE)
ENTRY = st.one_of(
    NAMES,
    st.fixed_dictionaries(
        {"name": st.one_of(GOOD_NAMES, NAMES)},
        optional={"description": DESCRIPTIONS, "extra": JSON_VALUE},
    ),
)
# Good entries with now and then a bad one: accepted sets are common enough to check that
# whatever `init` accepts is usable.
GOOD_ENTRIES = st.lists(GOOD_NAMES, min_size=1, max_size=5, unique_by=str.casefold)


@st.composite
def entries(draw: st.DrawFn) -> list[Any]:
    found: list[Any] = draw(GOOD_ENTRIES)
    if draw(st.booleans()):
        found.insert(draw(st.integers(0, len(found))), draw(ENTRY))
    return found


SENTENCE = "my card never arrived and I want to know where it is."


@st.composite
def label_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes) of a label file: JSON, YAML, plain lines, a corpus, or bytes."""
    kind = draw(st.sampled_from(["json", "yaml", "text"] * 2 + ["corpus", "sentences", "bytes"]))
    found = draw(entries())
    if kind == "json":
        name, text = "labels.json", json.dumps(found)
    elif kind == "yaml":
        name, text = "labels.yaml", yaml.safe_dump(found, allow_unicode=True)
    elif kind == "text":
        name = draw(st.sampled_from(["labels.txt", "labels", "labels.csv"]))
        text = "\n".join(e for e in found if isinstance(e, str))
    elif kind == "corpus":
        rows = draw(st.integers(2, 300))
        name, text = "labels.csv", "text,label\n" + f"{SENTENCE},refund\n" * rows
    elif kind == "sentences":
        name, text = "labels.txt", f"{SENTENCE}\n" * draw(st.integers(2, 300))
    else:
        name = draw(st.sampled_from(["labels.json", "labels.yaml", "labels.txt", "l.parquet"]))
        return name, draw(st.binary(max_size=200))
    return name, draw(mutated(text.encode("utf-8")))


# ---- configs -------------------------------------------------------------------------------
BASE_CONFIG = json.loads(ProjectConfig(embedding_model="hashing").model_dump_json())
PLAUSIBLE = st.one_of(
    st.integers(-2, 100), st.floats(-1, 3), st.booleans(), st.none(),
    st.sampled_from(["hashing", "openai/gpt-4o-mini", "", "hybrid", "margin"]),
)  # fmt: skip
CONFIG_KEYS = [
    *((k,) for k in BASE_CONFIG),
    *(("llm", k) for k in BASE_CONFIG["llm"]),
    *(("routing", k) for k in BASE_CONFIG["routing"]),
    ("surprise",),
    ("llm", "api_key"),
]


@st.composite
def configs(draw: st.DrawFn) -> bytes:
    """labelagent.json bytes: a valid config with one value replaced, JSON of any shape, or
    bytes; maybe cut off."""
    kind = draw(st.sampled_from(["one value", "one value", "plausible", "any json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=100))
    if kind == "any json":
        return json.dumps(draw(JSON_VALUE)).encode("utf-8")
    config = json.loads(json.dumps(BASE_CONFIG))
    *parents, key = draw(st.sampled_from(CONFIG_KEYS))
    target = config
    for parent in parents:
        target = target[parent]
    target[key] = draw(PLAUSIBLE if kind == "plausible" else JSON_VALUE)
    return draw(mutated(json.dumps(config, indent=2).encode("utf-8")))
