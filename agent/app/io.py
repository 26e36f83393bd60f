"""Import (CSV, JSONL, Parquet) and label files, with one clear error per bad row.

Rows stream through validation into the store's single import transaction, so a bad row
anywhere means nothing of that file is written. Row numbers count data rows from 1 (the
CSV header is not a row). Corpus files are read with errors="surrogateescape" so that bytes
which are not UTF-8 are reported by row and field, like any other bad cell.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.errors import InputError, LabelSetError
from agent.types import LabelSet

csv.field_size_limit(1 << 26)

READERS = (".csv", ".jsonl", ".ndjson", ".parquet")


@dataclass(frozen=True)
class Columns:
    text: str = "text"
    id: str | None = None
    label: str | None = None


# ---- label files -------------------------------------------------------------------------
def load_label_set(path: Path) -> LabelSet:
    """JSON (names or {name, description} objects), YAML (same shapes) or one label per line."""
    raw = _read_text(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data: Any = json.loads(raw)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(raw)
        else:
            data = [line.strip() for line in raw.splitlines() if line.strip()]
    except (json.JSONDecodeError, ValueError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # YAML messages span several lines
        raise LabelSetError(f"cannot parse label file ({detail})", file=str(path)) from None
    if isinstance(data, dict):  # {"name": "description", ...} is a natural YAML shape too
        data = [{"name": k, "description": v or ""} for k, v in data.items()]
    return _label_set_from(data, path)


def _label_set_from(data: Any, path: Path) -> LabelSet:
    if not isinstance(data, list) or not data:
        raise LabelSetError("expected a non-empty list of labels", file=str(path))
    seen: dict[str, int] = {}
    for row, entry in enumerate(data, start=1):
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(name, str) or not name.strip():
            raise LabelSetError("label has no name", file=str(path), row=row, field="name")
        if name.strip() in seen:
            raise LabelSetError(
                f"duplicate label '{name}' (first at row {seen[name.strip()]})",
                file=str(path),
                row=row,
                field="name",
            )
        seen[name.strip()] = row
    cleaned = [e.strip() if isinstance(e, str) else {**e, "name": e["name"].strip()} for e in data]
    return LabelSet.from_json(cleaned)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"not valid UTF-8 (line {_bad_utf8_line(path)})", file=str(path)) from None


# ---- corpus files ------------------------------------------------------------------------
def read_rows(
    path: Path, columns: Columns, label_set: LabelSet | None = None
) -> Iterator[tuple[str, str, str | None]]:
    """Validated (id, text, label|None) rows in input order; InputError on the first bad one."""
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise InputError(
            f"unknown format '{suffix}'; use one of {', '.join(READERS)}", file=str(path)
        )
    records = {".csv": _csv_records, ".parquet": _parquet_records}.get(suffix, _jsonl_records)
    seen_ids: dict[str, int] = {}
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
    file = str(path)
    for name in (columns.text, columns.id, columns.label):
        if name is not None and _not_utf8(record.get(name)):
            raise InputError("not valid UTF-8", file=file, row=row, field=name)
    text = record.get(columns.text)
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty or whitespace-only text", file=file, row=row, field=columns.text)
    ext_id = _cell(record.get(columns.id)) if columns.id else f"{path.name}:{row}"
    if not ext_id:
        raise InputError("empty id", file=file, row=row, field=columns.id)
    if ext_id in seen_ids:
        raise InputError(
            f"duplicate id '{ext_id}' (first at row {seen_ids[ext_id]})",
            file=file,
            row=row,
            field=columns.id,
        )
    seen_ids[ext_id] = row
    label = _cell(record.get(columns.label)) if columns.label else None
    if label and label_set is not None and label not in label_set:
        raise InputError(
            f"label '{label}' is not in the label set ({_preview(label_set.names)})",
            file=file,
            row=row,
            field=columns.label,
        )
    return ext_id, text, label or None


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
    try:
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.reader(handle)
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
        raise InputError(f"malformed CSV ({exc})", file=str(path)) from None


def _jsonl_records(path: Path, columns: Columns) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        row = 0
        for line in handle:
            if not line.strip():
                continue
            row += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON ({exc.msg})", file=str(path), row=row) from None
            if not isinstance(record, dict):
                raise InputError("expected a JSON object", file=str(path), row=row)
            if row == 1:
                _require_columns(path, list(record), columns)
            yield row, record


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


def _bad_utf8_line(path: Path) -> int:
    """Physical line number (1-based) of the first invalid UTF-8 byte."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0
