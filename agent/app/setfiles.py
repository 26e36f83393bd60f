"""Oracle and replay files of a multi-label project: CSV with an `id` or `text` column and a
`labels` (or `label`) column holding a set joined by a separator. Every set is checked like an
imported one (`labelcells`): one line naming file, row and field, before any work."""

from __future__ import annotations

import csv
from pathlib import Path

from agent.app.faults import naming, regular_file
from agent.app.labelcells import label_set_cell
from agent.app.preflight import _check_share, _items, match_items
from agent.errors import InputError
from agent.llm.annotators import AnswerFile, AnswerRow, answer_confidence
from agent.store.protocol import ProjectStore
from agent.types import LabelSet

SET_COLUMNS = ("labels", "label")


def read_set_file(path: Path, label_set: LabelSet, sep: str, what: str) -> AnswerFile:
    """Rows keyed by id (or text) whose `label` is the canonical text of the row's set."""
    regular_file(path)
    row_no = 0
    with naming(path):
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = [(name or "").strip() for name in reader.fieldnames or ()]
                reader.fieldnames = header
                key, column = _columns(header, path, what)
                rows = []
                for row_no, record in enumerate(reader, start=1):
                    rows.append(_row(record, (key, column), label_set, sep, (path, row_no)))
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid UTF-8 (byte {exc.start})", file=str(path)) from None
        except csv.Error as exc:
            raise InputError(f"malformed CSV ({exc})", file=str(path), row=row_no + 1) from None
    return AnswerFile(path, key, tuple(rows))


def _columns(header: list[str], path: Path, what: str) -> tuple[str, str]:
    """(key column, set column) of the header; InputError naming what is missing."""
    column = next((c for c in SET_COLUMNS if c in header), None)
    key = "id" if "id" in header else "text" if "text" in header else None
    if column is None or key is None:
        raise InputError(f"{what} file needs the header id,labels or text,labels (it has: "
                         f"{', '.join(header) or 'no columns'})", file=str(path))  # fmt: skip
    return key, column


def _row(
    record: dict[str, str | None], columns: tuple[str, str], label_set: LabelSet, sep: str,
    where: tuple[Path, int],
) -> AnswerRow:
    key, column = columns
    path, row_no = where
    if None in record:  # more cells than the header names
        raise InputError("more cells than the header has", file=str(path), row=row_no)
    value = record.get(key)
    if value is None or not value.strip():
        raise InputError(f"empty {key}", file=str(path), row=row_no, field=key)
    encoded = label_set_cell(record.get(column), label_set, sep, file=str(path), row=row_no,
                             field=column, required=True)  # fmt: skip
    assert encoded is not None  # required=True never gives None
    return AnswerRow(row_no, value if key == "text" else value.strip(), encoded,
                     answer_confidence(record, path, row_no))  # fmt: skip


def replay_sets(
    path: Path, store: ProjectStore, sep: str
) -> dict[str, tuple[tuple[str, ...], float]]:
    """Text -> (set, confidence) of a replay file (`replay:FILE`), checked like an oracle file
    (one line per bad set; a file matching under half the items is refused)."""
    from agent.types import decode_label_set

    matched, texts = _matched_rows(path, store, sep, "replay")
    return {texts[i]: (decode_label_set(row.label) or (), row.confidence)
            for i, row in matched.items()}  # fmt: skip


def load_set_answers(path: Path, store: ProjectStore, sep: str, what: str) -> dict[str, str]:
    """Project id -> encoded gold set; refuses a file that matches under half the items."""
    matched, _ = _matched_rows(path, store, sep, what)
    return {item_id: row.label for item_id, row in matched.items()}


def _matched_rows(
    path: Path, store: ProjectStore, sep: str, what: str
) -> tuple[dict[str, AnswerRow], dict[str, str]]:
    """The file's rows by project id (a file matching under half the items is refused), and
    the project's texts by id."""
    answers = read_set_file(path, store.label_set, sep, what)
    items = _items(store)
    matched = match_items(answers, items)
    _check_share(answers, what, len(matched), items)
    return matched, {it.id: it.text for it in items}
