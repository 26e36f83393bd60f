"""Import of CSV, JSONL and Parquet into a real on-disk store, label files, and bad input.

Bad input is checked here in-process for the exact file/row/field it names and for the
rollback; tests/test_cli.py checks the same cases through the real command line.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agent.app.io import Columns, load_label_set, read_rows
from agent.errors import InputError, LabelSetError
from agent.routing.sources import current_labels
from agent.store.sqlite import Store
from agent.types import ImportResult, LabelSet, text_hash

LABELS = LabelSet(("refund", "card_lost", "other"))
ROWS: list[dict[str, Any]] = [
    {"id": "r1", "text": "I want my money back", "label": "refund"},
    {"id": "r2", "text": 'He said "lost", then, well,\nnothing', "label": ""},
    {"id": "r3", "text": "Karte verloren, bitte sperren ✋", "label": "card_lost"},
    {"id": "r4", "text": "I want my money back", "label": "other"},
]


def write_csv(path: Path, rows: list[dict[str, Any]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


WRITERS: dict[str, Callable[[Path, list[dict[str, Any]]], Path]] = {
    ".csv": write_csv,
    ".jsonl": write_jsonl,
    ".parquet": write_parquet,
}


def import_file(store: Store, path: Path, columns: Columns) -> ImportResult:
    """What `labelagent import` does: validated rows streamed into one store transaction."""
    return store.add_items(read_rows(path, columns, store.label_set), source_file=str(path))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.create(tmp_path / "proj", LABELS)


# ---- formats ---------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", list(WRITERS))
def test_each_format_imports_every_row_in_order_with_seed_labels(
    store: Store, tmp_path: Path, suffix: str
) -> None:
    path = WRITERS[suffix](tmp_path / f"data{suffix}", ROWS)
    result = import_file(store, path, Columns("text", "id", "label"))
    assert result == ImportResult(added=4, skipped=0, seed_labels=3)
    assert [(i.id, i.text) for i in store.items()] == [(r["id"], r["text"]) for r in ROWS]
    current = current_labels(store)
    assert {store.items([k])[0].id: c.label for k, c in current.items()} == {
        "r1": "refund",
        "r3": "card_lost",
        "r4": "other",
    }
    seeds = store.annotations(source="import")
    assert {(a["kind"], a["actor"], a["confidence"]) for a in seeds} == {("label", "import", 1.0)}


def test_identical_texts_share_a_hash_after_unicode_normalisation(
    store: Store, tmp_path: Path
) -> None:
    composed = "café au lait"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    rows = [*ROWS, {"id": "r5", "text": decomposed, "label": ""}]
    rows.append({"id": "r6", "text": composed, "label": ""})
    import_file(store, write_jsonl(tmp_path / "d.jsonl", rows), Columns("text", "id"))
    hashes = {i.id: i.text_hash for i in store.items()}
    assert hashes["r1"] == hashes["r4"] == text_hash("I want my money back")
    assert hashes["r5"] == hashes["r6"]
    assert len(set(hashes.values())) == 4


def test_importing_the_same_file_twice_adds_nothing(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ROWS)
    import_file(store, path, Columns("text", "id", "label"))
    again = import_file(store, path, Columns("text", "id", "label"))
    assert again == ImportResult(added=0, skipped=4, seed_labels=0)
    assert store.count_items() == 4
    assert len(store.annotations(source="import")) == 3


def test_without_an_id_column_ids_come_from_file_name_and_row(store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ROWS)
    import_file(store, path, Columns())
    assert [i.id for i in store.items()] == ["d.csv:1", "d.csv:2", "d.csv:3", "d.csv:4"]
    assert import_file(store, path, Columns()).added == 0


def test_other_column_names_a_bom_blank_lines_and_numeric_ids(store: Store, tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("\ufeffkey,body\n7,first\n\n8,second\n", encoding="utf-8")
    import_file(store, csv_path, Columns(text="body", id="key"))
    parquet = write_parquet(tmp_path / "n.parquet", [{"k": 9.0, "t": "third"}, {"k": 10, "t": "x"}])
    import_file(store, parquet, Columns(text="t", id="k"))
    assert [(i.id, i.text) for i in store.items()] == [
        ("7", "first"),
        ("8", "second"),
        ("9", "third"),
        ("10", "x"),
    ]


def test_same_id_with_a_different_text_is_an_error_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    import_file(store, write_csv(tmp_path / "a.csv", ROWS[:2]), Columns("text", "id"))
    changed = [{"id": "new", "text": "fine"}, {"id": "r2", "text": "a different text"}]
    path = write_csv(tmp_path / "b.csv", changed)
    with pytest.raises(InputError, match="already in the project with a different text") as err:
        import_file(store, path, Columns("text", "id"))
    assert (err.value.file, err.value.row, err.value.field) == (str(path), 2, "id")
    assert store.count_items() == 2


def test_row_numbers_skip_blank_lines_in_every_check(store: Store, tmp_path: Path) -> None:
    import_file(store, write_csv(tmp_path / "a.csv", ROWS[:2]), Columns("text", "id"))
    path = tmp_path / "b.csv"
    path.write_text("id,text\nz,three\n\n  \nr2,changed\n", encoding="utf-8")
    with pytest.raises(InputError, match="row 2, field 'id'"):  # found by the store
        import_file(store, path, Columns("text", "id"))
    path.write_text("id,text\nz,three\n\n  \nr9,\n", encoding="utf-8")
    with pytest.raises(InputError, match="row 2, field 'text'"):  # found by the reader
        import_file(store, path, Columns("text", "id"))


# ---- bad input: file, row and field named; nothing written -----------------------------------
def _bad_csv(tmp: Path) -> Path:
    path = tmp / "bad.csv"
    path.write_bytes(b"id,text,label\n1,fine,refund\n2,caf\xe9 latte,other\n")
    return path


def _bad_jsonl(tmp: Path) -> Path:
    path = tmp / "bad.jsonl"
    path.write_bytes(b'{"id": 1, "text": "fine"}\n{"id": 2, "text": "caf\xe9"}\n')
    return path


def _garbage_parquet(tmp: Path) -> Path:
    path = tmp / "bad.parquet"
    path.write_bytes(b"PAR1 this is not really parquet" * 10)
    return path


def _rows_file(suffix: str, rows: list[dict[str, Any]]) -> Callable[[Path], Path]:
    return lambda tmp: WRITERS[suffix](tmp / f"bad{suffix}", rows)


def _text_file(name: str, text: str) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        (tmp / name).write_text(text, encoding="utf-8")
        return tmp / name

    return write


class Bad(NamedTuple):
    """A bad input file and the row, field and message fragment its error must carry."""

    make: Callable[[Path], Path]
    columns: Columns
    row: int | None
    field: str | None
    fragment: str


GOOD = [{"id": "g1", "text": "fine", "label": "refund"}, {"id": "g2", "text": "ok", "label": ""}]
EMPTY = {"id": "e", "text": "", "label": ""}
BLANK = {"id": "w", "text": " \t\n ", "label": ""}
NULL = {"id": "n", "text": None, "label": ""}
DUPLICATE = {"id": "g1", "text": "again", "label": ""}
OUTSIDE = {"id": "x", "text": "t", "label": "chargeback"}
ID, LABEL = Columns("text", "id"), Columns("text", "id", "label")
BAD_INPUT: dict[str, Bad] = {
    "missing file": Bad(lambda t: t / "nope.csv", Columns(), None, None, "no such file"),
    "missing column csv": Bad(_rows_file(".csv", GOOD), Columns("body"), None, "body", "column"),
    "missing column jsonl": Bad(_rows_file(".jsonl", GOOD), Columns(id="k"), None, "k", "column"),
    "missing column parquet": Bad(
        _rows_file(".parquet", GOOD), Columns(label="gold"), None, "gold", "column"
    ),
    "empty text": Bad(_rows_file(".csv", [*GOOD, EMPTY]), Columns(), 3, "text", "empty"),
    "whitespace-only text": Bad(_rows_file(".jsonl", [*GOOD, BLANK]), ID, 3, "text", "whitespace"),
    "null text in parquet": Bad(_rows_file(".parquet", [*GOOD, NULL]), ID, 3, "text", "empty"),
    "non-utf8 csv": Bad(_bad_csv, ID, 2, "text", "not valid UTF-8"),
    "non-utf8 jsonl": Bad(_bad_jsonl, ID, 2, "text", "not valid UTF-8"),
    "duplicate ids": Bad(
        _rows_file(".csv", [*GOOD, DUPLICATE]), ID, 3, "id", "duplicate id 'g1' (first at row 1)"
    ),
    "label outside the set": Bad(
        _rows_file(".csv", [*GOOD, OUTSIDE]), LABEL, 3, "label", "label 'chargeback' is not in"
    ),
    "malformed jsonl line": Bad(
        _text_file("bad.jsonl", '{"text": "fine"}\n\n{"text": "oops",\n'),
        Columns(),
        2,
        None,
        "malformed JSON",
    ),
    "jsonl line not an object": Bad(
        _text_file("bad.jsonl", '{"text": "fine"}\n["text"]\n'), Columns(), 2, None, "object"
    ),
    "unreadable parquet": Bad(_garbage_parquet, Columns(), None, None, "unreadable Parquet"),
    "ragged csv row": Bad(
        _text_file("bad.csv", "id,text\n1,fine\n2,too,many\n"), Columns(), 2, None, "cells"
    ),
    "unknown format": Bad(_text_file("bad.xlsx", "x"), Columns(), None, None, "unknown format"),
    # checked completely at the door (issue 15): texts, ids and labels of every kind
    "NUL in a text": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": "a", "text": "fine\x00"}]), ID, 3, "text", "U+0000"
    ),
    "escape sequence in a text": Bad(
        _rows_file(".csv", [*GOOD, {"id": "a", "text": "x\x1b[2J", "label": ""}]), ID, 3, "text",
        "control character (U+001B at character 2)",
    ),
    "nested JSON as text": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": "a", "text": {"t": "x"}}]), ID, 3, "text",
        "text must be a string, not an object",
    ),
    "number as text": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": "a", "text": 5}]), ID, 3, "text", "not a number"
    ),
    "list column as text": Bad(
        _rows_file(".parquet", [{"id": "a", "text": ["x"]}]), ID, 1, "text", "not a list"
    ),
    "id with a tab": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": "a\tb", "text": "x"}]), ID, 3, "id", "U+0009"
    ),
    "object as id": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": {"k": 1}, "text": "x"}]), ID, 3, "id",
        "id must be text or a whole number, not an object",
    ),
    "true as id": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": True, "text": "x"}]), ID, 3, "id", "true/false"
    ),
    "fraction as id": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": 1.5, "text": "x"}]), ID, 3, "id", "not 1.5"
    ),
    "blank id": Bad(
        _rows_file(".csv", [*GOOD, {"id": " ", "text": "x", "label": ""}]), ID, 3, "id", "empty id"
    ),
    "list as label": Bad(
        _rows_file(".jsonl", [*GOOD, {"id": "a", "text": "x", "label": ["refund"]}]), LABEL, 3,
        "label", "label must be text",
    ),
    "cut-off quoted cell": Bad(
        _text_file("bad.csv", 'id,text\n1,fine\n2,"never closed\n'), Columns(), 2, None,
        "unexpected end of data",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_names_file_row_field_and_writes_nothing(
    store: Store, tmp_path: Path, case: str
) -> None:
    import_file(store, write_csv(tmp_path / "first.csv", GOOD), Columns("text", "id"))
    bad = BAD_INPUT[case]
    path = bad.make(tmp_path)
    with pytest.raises(InputError) as err:
        import_file(store, path, bad.columns)
    assert (err.value.file, err.value.row, err.value.field) == (str(path), bad.row, bad.field)
    assert bad.fragment in str(err.value)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert store.count_items() == 2
    assert len(store.annotations()) == 0


# ---- label files -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("l.json", '["refund", "card_lost", "other"]'),
        ("l.txt", "refund\n\n  card_lost  \nother\n"),
        ("l.yaml", "- refund\n- card_lost\n- other\n"),
    ],
)
def test_label_files_of_plain_names(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    labels = load_label_set(tmp_path / name)
    assert labels.names == ("refund", "card_lost", "other")
    assert labels.descriptions == ("", "", "")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "l.json",
            '[{"name": "refund", "description": "wants money back"},'
            ' {"name": "card_lost", "description": "card is gone"}, {"name": "other"}]',
        ),
        (
            "l.yml",
            "- name: refund\n  description: wants money back\n"
            "- name: card_lost\n  description: card is gone\n- name: other\n",
        ),
        ("l.yaml", "refund: wants money back\ncard_lost: card is gone\nother:\n"),
    ],
)
def test_label_files_keep_descriptions(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    labels = load_label_set(tmp_path / name)
    assert labels.names == ("refund", "card_lost", "other")
    assert labels.descriptions == ("wants money back", "card is gone", "")


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("dup.txt", "refund\nother\n refund \n", "row 3, field 'name': duplicate label 'refund'"),
        ("dup.json", '[{"name": "a"}, {"name": "a"}]', "duplicate label 'a' (first at row 1)"),
        ("empty.txt", "\n  \n", "non-empty list"),
        ("empty.json", "[]", "non-empty list"),
        ("empty.yaml", "", "non-empty list"),
        ("noname.json", '[{"description": "x"}]', "row 1, field 'name': label has no name"),
        ("number.json", '["refund", 7]', "row 2, field 'name': label has no name"),
        ("broken.json", '["refund",', "cannot parse label file"),
        ("broken.yaml", "- refund\n- [other\n", "cannot parse label file"),
        ("scalar.json", '"refund"', "non-empty list"),
    ],
)
def test_bad_label_files(tmp_path: Path, name: str, content: str, fragment: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(LabelSetError) as err:
        load_label_set(tmp_path / name)
    assert fragment in str(err.value)
    assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_or_non_utf8_label_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_label_set(tmp_path / "absent.json")
    (tmp_path / "latin.txt").write_bytes(b"refund\ncaf\xe9\n")
    with pytest.raises(InputError, match=r"not valid UTF-8 \(line 2\)"):
        load_label_set(tmp_path / "latin.txt")


def test_mis_decoded_punctuation_passes_the_door(store: Store, tmp_path: Path) -> None:
    """C1 controls are refused in ids and label names, not in texts: real corpora carry them as
    mis-decoded punctuation (sms_spam has U+0092 for an apostrophe)."""
    rows = [{"id": "a", "text": "it\x92s fine\tand\r\nmultiline"}]
    import_file(store, write_jsonl(tmp_path / "c1.jsonl", rows), Columns("text", "id"))
    assert [i.text for i in store.items()] == [rows[0]["text"]]


# ---- label sets checked completely at `init` ---------------------------------------------------
CORPUS_ROWS = "text,label\n" + "my card never arrived,card\n" * 300
SENTENCES = "My card never arrived at all.\nI want my money back now.\nWhere is my new PIN?\n"


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("ctl.json", '["refund", "oth\\u001ber"]',
         "row 2, field 'name': label name holds an invisible or control character (U+001B)"),
        ("zw.json", '["refund", "re\\u200bfund"]', "invisible or control character (U+200B)"),
        ("pad.json", '["refund", " other"]', "row 2, field 'name': label name ' other' starts or"),
        ("case.json", '["refund", "Refund"]', "row 2, field 'name': duplicate label 'Refund' "
         "(same as 'refund' up to case and spacing, at row 1)"),
        ("space.txt", "card lost\ncard   lost\n", "row 2, field 'name': duplicate label"),
        ("abstain.yaml", "- refund\n- __Abstain__\n", "row 2, field 'name': '__abstain__' is"),
        ("one.txt", "refund\n", "a set that cannot be classified: only 'refund'"),
        ("long.json", '["refund", "' + "x" * 101 + '"]', "row 2, field 'name': label name is 101"),
        ("longdesc.json", '[{"name": "a", "description": "' + "d" * 1001 + '"}, "b"]',
         "row 1, field 'description': description is 1001 characters long"),
        ("nested.yaml", "refund: {why: money}\nother: x\n",
         "row 1, field 'description': description must be text, not an object"),
        ("unknown.json", '[{"name": "a", "desc": "x"}, "b"]', "row 1, field 'desc': unknown field"),
        ("bool.yaml", "- yes\n- no\n", "row 1, field 'name': label has no name (found a true/"),
        ("corpus.csv", CORPUS_ROWS, "a table (columns 'text,label'), not a label list; did you "
         "mean 'labelagent import'?"),
        ("corpus.jsonl", '{"text": "hi"}\n', "a .jsonl file is a corpus; did you mean 'labelagent"),
        ("sentences.txt", SENTENCES, "3 of 3 labels read like sentences; did you mean"),
        ("rows.json", '[{"text": "my card", "label": "card"}]', "row 1: rows with a 'text' field"),
        ("many.txt", "".join(f"label{i}\n" for i in range(1001)), "1,001 labels looks like a"),
    ],
)  # fmt: skip
def test_label_sets_are_checked_completely(
    tmp_path: Path, name: str, content: str, fragment: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(LabelSetError) as err:
        load_label_set(tmp_path / name)
    assert fragment in str(err.value)
    assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)


def test_a_label_file_keeps_multiline_descriptions(tmp_path: Path) -> None:
    path = tmp_path / "l.yaml"
    path.write_text("refund: |\n  wants money back\n  (any currency)\ncard_lost:\n", "utf-8")
    labels = load_label_set(path)
    assert labels.names == ("refund", "card_lost")
    assert labels.descriptions == ("wants money back\n(any currency)\n", "")
