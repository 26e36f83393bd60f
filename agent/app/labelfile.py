"""Label files (JSON, YAML or one label per line), checked completely at `init`.

What the LLM layer would refuse later is refused here, with the row and field: names that are
empty, padded, invisible or control characters, too long, equal up to case and spacing, or the
abstain marker; descriptions that are not text; a set of fewer than two labels (nothing to
classify). A file that looks like a corpus (a table, JSON Lines, Parquet, sentences, thousands
of rows) is refused with a hint towards `labelagent import`.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from agent.app.faults import regular_file
from agent.errors import LabelSetError
from agent.llm.item_markup import ABSTAIN
from agent.types import LabelSet

MAX_LABELS = 1000
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_FILE_BYTES = 4 << 20
CORPUS_HINT = "did you mean 'labelagent import'? (a label file is JSON, YAML or one label per line)"
_CORPUS_SUFFIXES = (".jsonl", ".ndjson", ".parquet")
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_FIELDS = {"name", "description"}
_INVISIBLE = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")  # never part of a name


def load_label_set(path: Path) -> LabelSet:
    """The checked label set of a label file; LabelSetError (file, row, field) otherwise."""
    raw = _read(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data: Any = json.loads(raw)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(raw)
        else:
            data = _lines(raw, path)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        detail = " ".join(str(exc).split()) or "nested too deeply"  # YAML spans several lines
        raise LabelSetError(f"cannot parse label file ({detail})", file=str(path)) from None
    if isinstance(data, dict):  # {"name": "description", ...} is a natural YAML shape too
        data = [{"name": k, "description": v} for k, v in data.items()]
    return check_label_set(data, path)


def _read(path: Path) -> str:
    """The file's text; refuses early what cannot be a label list (by kind, size, suffix)."""
    regular_file(path)
    if path.suffix.lower() in _CORPUS_SUFFIXES:
        raise LabelSetError(f"a {path.suffix} file is a corpus; {CORPUS_HINT}", file=str(path))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise LabelSetError(
            f"{size:,} bytes is far too large for a label list; {CORPUS_HINT}", file=str(path)
        )
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LabelSetError(f"not valid UTF-8 (line {line})", file=str(path)) from None


def _lines(raw: str, path: Path) -> list[str]:
    """One label per non-blank line, spaces and tabs around it dropped."""
    rows = [line.strip(" \t\r") for line in raw.split("\n")]
    delimiter = _TABLE_SUFFIXES.get(path.suffix.lower())
    if delimiter is not None and any(delimiter in row for row in rows):
        header = next(row for row in rows if row)
        raise LabelSetError(
            f"a table (columns {header[:60]!r}), not a label list; {CORPUS_HINT}", file=str(path)
        )
    return [row for row in rows if row]


def check_label_set(data: Any, path: Path) -> LabelSet:
    """Every entry checked, then the set as a whole; the first problem is raised."""
    file = str(path)
    if not isinstance(data, list) or not data:
        raise LabelSetError("expected a non-empty list of labels", file=file)
    _refuse_corpus(data, file)
    names: list[str] = []
    descriptions: list[str] = []
    seen: dict[str, tuple[int, str]] = {}
    for row, entry in enumerate(data, start=1):
        name, description = _entry(entry, file, row)
        key = normalised(name)
        if key in seen:
            first_row, first = seen[key]
            same = "first at" if first == name else f"same as '{first}' up to case and spacing, at"
            raise LabelSetError(
                f"duplicate label '{name}' ({same} row {first_row})", file=file, row=row,
                field="name",
            )  # fmt: skip
        seen[key] = (row, name)
        names.append(name)
        descriptions.append(description)
    if len(names) < 2:
        raise LabelSetError(
            f"a set that cannot be classified: only '{names[0]}'; give at least two labels",
            file=file,
        )
    return LabelSet(tuple(names), tuple(descriptions))


def normalised(name: str) -> str:
    """The form in which two names count as the same label (case and spacing ignored)."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _refuse_corpus(data: list[Any], file: str) -> None:
    """A list that is a corpus in disguise: too long, rows with a text field, or sentences."""
    if len(data) > MAX_LABELS:
        raise LabelSetError(f"{len(data):,} labels looks like a corpus; {CORPUS_HINT}", file=file)
    for row, entry in enumerate(data, start=1):
        if isinstance(entry, dict) and "name" not in entry and "text" in entry:
            raise LabelSetError(
                f"rows with a 'text' field look like a corpus; {CORPUS_HINT}", file=file, row=row
            )
    names = [e.get("name") if isinstance(e, dict) else e for e in data]
    sentences = sum(isinstance(n, str) and _sentence(n) for n in names)
    if sentences >= 2 and 2 * sentences > len(names):
        raise LabelSetError(
            f"{sentences} of {len(names)} labels read like sentences; {CORPUS_HINT}", file=file
        )


def _sentence(name: str) -> bool:
    words = name.split()
    return len(words) >= 8 or (len(words) >= 3 and name.rstrip()[-1:] in ".?!")


def _entry(entry: Any, file: str, row: int) -> tuple[str, str]:
    """(name, description) of one entry, each checked."""
    description: Any = ""
    if isinstance(entry, dict):
        unknown = sorted(map(str, set(entry) - _FIELDS))
        if unknown:
            raise LabelSetError(
                f"unknown field '{unknown[0]}' (a label has a name and a description)",
                file=file, row=row, field=unknown[0],
            )  # fmt: skip
        name, description = entry.get("name"), entry.get("description")
    else:
        name = entry
    return _check_name(name, file, row), _check_description(description, file, row)


def _check_name(name: Any, file: str, row: int) -> str:
    def refuse(problem: str) -> LabelSetError:
        return LabelSetError(problem, file=file, row=row, field="name")

    if not isinstance(name, str):
        found = "" if name is None else f" (found {kind_of(name)}; write names as quoted text)"
        raise refuse(f"label has no name{found}")
    if not name.strip():
        raise refuse("label has no name")
    bad = next((ch for ch in name if unicodedata.category(ch) in _INVISIBLE), None)
    if bad is not None:
        raise refuse(f"label name holds an invisible or control character (U+{ord(bad):04X})")
    if name != name.strip():
        raise refuse(f"label name '{name}' starts or ends with spaces; remove them")
    if len(name) > MAX_NAME:
        raise refuse(
            f"label name is {len(name)} characters long; keep it under {MAX_NAME} and put "
            "the detail in its description"
        )
    if normalised(name) == ABSTAIN:
        raise refuse(f"'{ABSTAIN}' is reserved (the LLM's 'cannot tell'); rename this label")
    return name


def _check_description(description: Any, file: str, row: int) -> str:
    def refuse(problem: str) -> LabelSetError:
        return LabelSetError(problem, file=file, row=row, field="description")

    if description is None:
        return ""
    if not isinstance(description, str):
        raise refuse(f"description must be text, not {kind_of(description)}")
    bad = next((ch for ch in description if control(ch)), None)
    if bad is not None:
        raise refuse(f"description holds a control character (U+{ord(bad):04X})")
    if len(description) > MAX_DESCRIPTION:
        raise refuse(
            f"description is {len(description)} characters long; keep it under "
            f"{MAX_DESCRIPTION}"
        )
    return description


def control(ch: str) -> bool:
    """A character no text may hold: C0 controls but tab and line breaks, DEL, and lone
    surrogates (undecodable bytes). C1 controls pass: real corpora carry them as mis-decoded
    punctuation (U+0092 for an apostrophe)."""
    code = ord(ch)
    return (code < 0x20 and ch not in "\t\n\r") or code == 0x7F or 0xD800 <= code <= 0xDFFF


def kind_of(value: Any) -> str:
    """What a non-text value is, in the words of the file it came from."""
    if isinstance(value, bool):
        return "a true/false value"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object (nested values)"
    if isinstance(value, (list, tuple)):
        return "a list (nested values)"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return f"a {type(value).__name__} value"
