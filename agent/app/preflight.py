"""What `run` and `estimate` refuse before any work (embedding takes seconds to minutes): an
empty project, a simulated LLM without gold, a bad annotator spec, and oracle or replay files
that match too few of the project's items. Each refusal is one line naming the flag or the
command that fixes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.app.faults import naming, regular_file
from agent.errors import InputError
from agent.llm.annotators import AnswerFile, AnswerRow, annotator_kind, read_answer_file
from agent.store.protocol import ProjectStore
from agent.types import Item, text_hash

MIN_MATCHED_SHARE = 0.5  # an answer file matching fewer of the items is a wrong key, not a gap
_HINTS = {
    "id": "ids are compared as strings; was --id-col given at import?",
    "text": "texts are compared exactly as imported",
}


def check_llm_choice(model: str | None, oracle_file: Path | None) -> None:
    """Before the project opens: the simulated LLM's spec is sound and has gold to answer
    from; a replay file exists. `model` is the resolved `--llm` (None: no LLM)."""
    if model is None or not model.startswith(("simulated:", "replay:")):
        return
    kind, rest = annotator_kind(model)
    if kind == "replay":
        regular_file(Path(rest))
    elif oracle_file is None:
        raise InputError(
            f"--llm {model} answers from gold labels: pass --oracle-file FILE "
            "(a CSV of id,label or text,label, e.g. examples/support/gold.csv)"
        )


def refuse_empty(store: ProjectStore, project: Path) -> None:
    """A project without items has nothing to run on or to price."""
    if store.count_items() == 0:
        raise InputError(
            f"the project has no items; import some first: labelagent import {project} FILE",
            file=str(project),
        )


def load_oracle_answers(path: Path, store: ProjectStore) -> dict[str, str]:
    """Project id -> gold label from an oracle file (id,label or text,label); refuses labels
    outside the set and a file that matches under half the project's items."""
    regular_file(path)
    with naming(path):
        answers = read_answer_file(path, "oracle")
    names = store.label_set.names
    for row in answers.rows:
        if row.label not in names:
            raise InputError(f"label '{row.label}' is not in the label set",
                             file=str(path), row=row.row, field="label")  # fmt: skip
    items = _items(store)
    matched = match_items(answers, items)
    _check_share(answers, "oracle", len(matched), items)
    return {item_id: row.label for item_id, row in matched.items()}


def check_replay(model: str | None, store: ProjectStore) -> None:
    """A `replay:FILE` LLM must answer at least half the project's items."""
    if model is None or not model.startswith("replay:"):
        return
    path = Path(annotator_kind(model)[1])
    with naming(path):
        answers = read_answer_file(path, "replay")
    items = _items(store)
    _check_share(answers, "replay", len(match_items(answers, items)), items)


def match_items(answers: AnswerFile, items: Iterable[Item]) -> dict[str, AnswerRow]:
    """Project id -> the file's row for that item, by id or by text (first row wins)."""
    first = answers.first_by_key()
    if answers.key == "id":
        return {it.id: first[it.id] for it in items if it.id in first}
    by_hash: dict[str, AnswerRow] = {}
    for text, row in first.items():
        by_hash.setdefault(text_hash(text), row)
    return {it.id: by_hash[it.text_hash] for it in items if it.text_hash in by_hash}


def _items(store: ProjectStore) -> list[Item]:
    return [item for batch in store.iter_items() for item in batch]


def _check_share(answers: AnswerFile, what: str, matched: int, items: list[Item]) -> None:
    if not items or matched >= MIN_MATCHED_SHARE * len(items):
        return
    key = answers.key
    sample = ""
    if key == "id" and answers.rows:  # the two shapes side by side show what went wrong
        sample = f" (its ids look like '{answers.rows[0].key}', the project's '{items[0].id}')"
    raise InputError(
        f"{what} file matches {matched} of the project's {len(items)} items by {key}"
        f"{sample}; {_HINTS[key]}",
        file=str(answers.path),
    )
