"""Import of corpora (CSV, JSONL, Parquet), with one clear error per bad row.

Rows stream through validation into the store's single import transaction, so a bad row
anywhere means nothing of that file is written. Row numbers count data rows from 1 (the
CSV header is not a row). Corpus files are read with errors="surrogateescape" so that bytes
which are not UTF-8 are reported by row and field, like any other bad cell. Label files are
read and checked in `labelfile.py`.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.app.faults import naming, regular_file
from agent.app.labelcells import label_set_cell
from agent.app.labelfile import control, kind_of, load_label_set
from agent.errors import InputError
from agent.types import LabelSet

csv.field_size_limit(1 << 26)

READERS = (".csv", ".jsonl", ".ndjson", ".parquet")
_ID_CONTROL = ("Cc", "Zl", "Zp")  # an id is one line of visible text

__all__ = [
    "READERS",
    "Columns",
    "check_corpus_file",
    "id_problem",
    "load_label_set",
    "read_rows",
    "text_problem",
]


@dataclass(frozen=True)
class Columns:
    text: str = "text"
    id: str | None = None
    label: str | None = None
    # Multi-label projects: the label column holds a set (a list, or text joined by this
    # separator), stored in its canonical text; None: one label per row.
    label_sep: str | None = None


# ---- corpus files ------------------------------------------------------------------------
def check_corpus_file(path: Path) -> None:
    """Refuse, before the project is opened, a path that cannot be a corpus to read."""
    regular_file(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise InputError(
            f"unknown format '{suffix}'; use one of {', '.join(READERS)}", file=str(path)
        )


def read_rows(
    path: Path, columns: Columns, label_set: LabelSet | None = None
) -> Iterator[tuple[str, str, str | None]]:
    """Validated (id, text, label|None) rows in input order; InputError on the first bad one."""
    check_corpus_file(path)
    records = {".csv": _csv_records, ".parquet": _parquet_records}.get(
        path.suffix.lower(), _jsonl_records
    )
    seen_ids: dict[str, int] = {}
    with naming(path):
        for row, record in records(path, columns):
            yield _validate(record, row, path, columns, label_set, seen_ids)


def _validate(
    record: dict[str, Any],
    row: int,
    path: Path,
    columns: Columns,
    label_set: LabelSet | None,
    seen_ids: dict[str, int],
) -> tuple[str, str, str | None]:
    """One record checked completely: text, id, seed label; the first problem is raised."""
    file = str(path)
    for name in (columns.text, columns.id, columns.label):
        if name is not None and _not_utf8(record.get(name)):
            raise InputError("not valid UTF-8", file=file, row=row, field=name)
    problem = _text_problem(record.get(columns.text))
    if problem:
        raise InputError(problem, file=file, row=row, field=columns.text)
    text: str = record[columns.text]
    ext_id, problem = _id_cell(record.get(columns.id)) if columns.id else (f"{path.name}:{row}", "")
    if problem:
        raise InputError(problem, file=file, row=row, field=columns.id)
    if ext_id in seen_ids:
        raise InputError(
            f"duplicate id '{ext_id}' (first at row {seen_ids[ext_id]})",
            file=file,
            row=row,
            field=columns.id,
        )
    seen_ids[ext_id] = row
    if columns.label_sep is not None and columns.label is not None and label_set is not None:
        cell = record.get(columns.label)
        return ext_id, text, label_set_cell(
            cell, label_set, columns.label_sep, file=file, row=row, field=columns.label
        )
    label = _label_cell(record, file, row, columns.label)
    if label and label_set is not None and label not in label_set:
        raise InputError(
            f"label '{label}' is not in the label set ({_preview(label_set.names)})",
            file=file,
            row=row,
            field=columns.label,
        )
    return ext_id, text, label or None


def _text_problem(text: Any) -> str:
    """Why `text` cannot be an item's text, or "" when it can."""
    if text is not None and not isinstance(text, str):
        return f"text must be a string, not {kind_of(text)}"
    if not text or not text.strip():
        return "empty or whitespace-only text"
    at = next((i for i, ch in enumerate(text) if control(ch)), None)
    if at is not None:
        return (
            f"text holds a control character (U+{ord(text[at]):04X} at character {at + 1}); "
            "remove it or fix the file's encoding"
        )
    return ""


def _id_cell(value: Any) -> tuple[str, str]:
    """(id, problem): text or a whole number, with no control character; problem "" if fine."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
        return "", f"id must be text or a whole number, not {kind_of(value)}"
    if isinstance(value, float) and not value.is_integer():
        return "", f"id must be text or a whole number, not {value!r}"
    if isinstance(value, str):
        bad = next((ch for ch in value if unicodedata.category(ch) in _ID_CONTROL), None)
        if bad is not None:
            return "", f"id holds a control character (U+{ord(bad):04X})"
    ext_id = _cell(value)
    return ext_id, "" if ext_id else "empty id"


def _label_cell(record: dict[str, Any], file: str, row: int, field: str | None) -> str | None:
    """A seed label cell as text (None when there is no label column)."""
    if field is None:
        return None
    value = record.get(field)
    if isinstance(value, (bool, dict, list, tuple, bytes, bytearray)):
        raise InputError(f"label must be text, not {kind_of(value)}", file=file, row=row,
                         field=field)
    return _cell(value)


def _not_utf8(value: Any) -> bool:
    """True for a string holding undecodable bytes (as lone surrogates, from surrogateescape)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _preview(names: tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def _require_columns(path: Path, present: list[str], columns: Columns) -> None:
    for name in (columns.text, columns.id, columns.label):
        if name is not None and name not in present:
            raise InputError(
                f"column not found; the file has: {', '.join(present) or 'no columns'}",
                file=str(path),
                field=name,
            )


def _csv_records(path: Path, columns: Columns) -> Iterator[tuple[int, dict[str, Any]]]:
    row = 0
    try:
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.reader(handle, strict=True)  # a cut-off quoted cell is an error
            header = next(reader, None)
            if header is None:
                raise InputError("empty file (no header row)", file=str(path))
            header = [h.strip() for h in header]
            _require_columns(path, header, columns)
            # Blank lines are not rows (as in JSONL), so row numbers match the store's count.
            filled = (c for c in reader if len(c) == len(header) or any(x.strip() for x in c))
            for row, cells in enumerate(filled, start=1):
                if len(cells) != len(header):
                    raise InputError(
                        f"expected {len(header)} cells, found {len(cells)}", file=str(path), row=row
                    )
                yield row, dict(zip(header, cells))
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", file=str(path), row=row + 1) from None


def _jsonl_records(path: Path, columns: Columns) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        row = 0
        for line in handle:
            if not line.strip():
                continue
            row += 1
            record = _json_object(line, path, row)
            if row == 1:
                _require_columns(path, list(record), columns)
            yield row, record


def _json_object(line: str, path: Path, row: int) -> dict[str, Any]:
    """One JSONL line as an object; InputError naming the row otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg})", file=str(path), row=row) from None
    except RecursionError:
        raise InputError("malformed JSON (nested too deeply)", file=str(path), row=row) from None
    if not isinstance(record, dict):
        raise InputError("expected a JSON object", file=str(path), row=row)
    return record


def _parquet_records(path: Path, columns: Columns) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"unreadable Parquet file ({_first_line(exc)})", file=str(path)) from None
    _require_columns(path, parquet.schema_arrow.names, columns)
    wanted = [c for c in (columns.text, columns.id, columns.label) if c is not None]
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=65_536, columns=wanted):
            for record in batch.to_pylist():
                row += 1
                yield row, record
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"unreadable Parquet data ({_first_line(exc)})", file=str(path), row=row + 1
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def text_problem(text: Any) -> str:
    """Why `text` cannot be an item's text, or "" when it can (for the interchange formats)."""
    return _text_problem(text)


def id_problem(value: Any) -> str:
    """Why `value` cannot be an item's id, or "" when it can (for the interchange formats)."""
    return _id_cell(value)[1]
