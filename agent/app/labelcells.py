"""Cells that hold a set of labels (multi-label projects): a list in JSONL and Parquet, text
joined by a separator in CSV. Checked whole, so a bad set is one line naming file, row and
field, and the set is stored in its canonical text (`agent.types.encode_label_set`)."""

from __future__ import annotations

from typing import Any

from agent.app.labelfile import kind_of
from agent.errors import InputError
from agent.types import LabelSet, encode_label_set, label_set_problem

DEFAULT_SEP = "|"


def set_names(value: Any, sep: str) -> list[str] | None:
    """The names a cell lists, as written (None for an empty or missing cell); ValueError for
    a cell that is neither text nor a list of texts."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(sep)]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, str) for v in value):
            bad = next(v for v in value if not isinstance(v, str))
            raise ValueError(f"labels in a set must be text, not {kind_of(bad)}")
        return [v.strip() for v in value]
    raise ValueError(f"labels must be a list or text joined by '{sep}', not {kind_of(value)}")


def label_set_cell(
    value: Any, label_set: LabelSet, sep: str, *, file: str, row: int, field: str,
    required: bool = False,
) -> str | None:
    """The canonical text of a cell's label set; None for an empty cell unless `required`.
    InputError naming file, row and field for anything else that is not a valid set."""
    try:
        return encoded_set(value, label_set, sep, required)
    except ValueError as exc:
        raise InputError(str(exc), file=file, row=row, field=field) from None


def encoded_set(value: Any, label_set: LabelSet, sep: str, required: bool) -> str | None:
    """The canonical text of the set `value` lists (None when it lists nothing and is not
    `required`); ValueError saying why it is not a valid set. Every set that comes in (corpus
    cells, oracle and replay files, tool files) passes here, so all are checked and stored
    alike."""
    names = set_names(value, sep)
    if names is None:
        if not required:
            return None
        names = []
    problem = label_set_problem(names, label_set)
    if problem:
        raise ValueError(problem)
    return encode_label_set(names, label_set)


def check_sep(sep: str) -> str:
    """A usable separator: one or more characters, not a quote or a line break."""
    if not sep or any(ch in sep for ch in "\"\r\n"):
        raise InputError("--label-sep must be one or more characters, not a quote or line break",
                         field="label-sep")  # fmt: skip
    return sep
