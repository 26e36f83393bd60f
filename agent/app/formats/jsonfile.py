"""Reading and writing the JSON of interchange files, with errors that name file, record, field.

A record is a task (Label Studio), a record (Argilla) or a line (Prodigy), counted from 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from agent.app.faults import naming
from agent.app.labelfile import kind_of
from agent.errors import InputError

T = TypeVar("T")


class Where:
    """The place in a file that an error names: file, record number, field path."""

    def __init__(self, path: Path, record: int) -> None:
        self.file, self.record = str(path), record

    def fail(self, message: str, field: str | None = None) -> InputError:
        return _record_error(message, self.file, self.record, field)

    def need(self, value: Any, kind: type[T] | tuple[type, ...], field: str) -> T:
        """`value` if it is of `kind` (bool never counts as a number), else the error."""
        number = kind in (int, float) or (isinstance(kind, tuple) and float in kind)
        if isinstance(value, kind) and not (number and isinstance(value, bool)):
            return value  # type: ignore[return-value]
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise self.fail(f"expected {_word(names)}, found {kind_of(value)}", field)


def _record_error(message: str, file: str, record: int, field: str | None) -> InputError:
    """An InputError that says "record N" where a corpus error says "row N"."""
    error = InputError(message, file=file, field=field)
    parts = (file, f"record {record}" if record else "", f"field '{field}'" if field else "")
    error.args = (f"{', '.join(p for p in parts if p)}: {message}",)
    error.row = record or None
    return error


def _word(names: str) -> str:
    return names.replace("str", "text").replace("dict", "an object").replace("list", "a list") \
        .replace("float", "a number").replace("int", "a whole number")


def load_array(path: Path) -> list[Any]:
    """A file holding one JSON array (a single object counts as an array of one)."""
    with naming(path):
        raw = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", file=str(path)
        ) from None
    except RecursionError:
        raise InputError("malformed JSON (nested too deeply)", file=str(path)) from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise InputError(f"expected a JSON array of records, found {kind_of(data)}", file=str(path))
    return data


def load_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number among non-blank lines, parsed value) of a JSONL file."""
    record = 0
    with naming(path), path.open(encoding="utf-8-sig") as handle:
        for line in handle:
            if not line.strip():
                continue
            record += 1
            try:
                yield record, json.loads(line)
            except json.JSONDecodeError as exc:
                raise Where(path, record).fail(f"malformed JSON ({exc.msg})") from None
            except RecursionError:
                raise Where(path, record).fail("malformed JSON (nested too deeply)") from None


def write_array(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A JSON array, one record per line, streamed (bounded memory)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for n, record in enumerate(records):
            handle.write(("\n" if n == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
        handle.write("\n]\n")


def write_lines(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
