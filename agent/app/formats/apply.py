"""The import side: tasks read from a tool's file, checked whole, then written with provenance.

Every task is checked (text, id, labels in the label set) before anything is written, so a bad
file writes nothing. Then, in order: the items (the store's import transaction; a known id
with the same text is kept), the machines' votes and labels, the labels that came with a
corpus (source `import`), and people's answers through `record_human_labels` (one transaction
per annotator), which also completes their queue entries: answers from a review in another
tool close the same items in the project's queue. A mark already standing in the project
(same item, source, kind, label and annotator) is not added again, so importing a file twice
adds nothing.

In a multi-label project every label is a set in its canonical text (`formats.choices`),
checked where it was read; the rest is the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.app.formats.choices import Choices
from agent.app.formats.jsonfile import Where
from agent.app.formats.model import Mark, Task
from agent.app.io import id_problem, text_problem
from agent.loop.record import HumanLabel, record_human_labels
from agent.store.protocol import ProjectStore
from agent.types import Annotation, Kind, Source


@dataclass(frozen=True)
class Imported:
    """What an import did: items added and kept, marks written per source, marks known."""

    added: int
    skipped: int
    by_source: dict[str, int]
    known: int


def check_tasks(tasks: list[Task], path: Path, choices: Choices, text_key: str) -> None:
    """Raise the first problem of any task (naming file, record and field); ids default to
    `<file name>:<record>`. (Sets were checked as they were read, naming their field.)"""
    labels = choices.label_set
    seen: dict[str, int] = {}
    for task in tasks:
        where = Where(path, task.record)
        problem = text_problem(task.text)
        if problem:
            raise where.fail(problem, text_key)
        task.id = task.id or f"{path.name}:{task.record}"
        problem = id_problem(task.id)
        if problem:
            raise where.fail(problem, "id")
        if task.id in seen:
            raise where.fail(f"duplicate id '{task.id}' (first at record {seen[task.id]})", "id")
        seen[task.id] = task.record
        for mark in task.marks:
            if not choices.multiple and mark.label is not None and mark.label not in labels:
                raise where.fail(f"label '{mark.label}' is not in the label set", "label")


def apply_tasks(
    store: ProjectStore, tasks: list[Task], path: Path, how: tuple[str, bool]
) -> Imported:
    """Write checked tasks into the store (see the module docstring); `how` is (format,
    whether labels are sets)."""
    fmt, sets = how
    result = store.add_items(((t.id, t.text, None) for t in tasks), source_file=str(path))
    keys = _keys(store, {t.id for t in tasks})
    standing = {
        (r["item_key"], r["source"], r["kind"], r["label"], r["actor"])
        for r in store.annotations()
    }
    fresh: list[tuple[int, Mark]] = []
    for task in tasks:
        for mark in task.marks:
            fact = (keys[task.id], mark.source, mark.kind, mark.label, mark.actor)
            if fact not in standing:
                standing.add(fact)
                fresh.append((keys[task.id], mark))
    meta = {"imported_from": fmt, "file": path.name}
    machine = [(k, m) for k, m in fresh if m.source != Source.HUMAN.value]
    machine.sort(key=lambda km: km[1].kind != Kind.VOTE.value)  # votes before labels
    store.add_annotations([_annotation(k, m, meta) for k, m in machine])
    people = [(k, m) for k, m in fresh if m.source == Source.HUMAN.value]
    for actor in dict.fromkeys(m.actor for _, m in people):
        answers = [HumanLabel(k, m.label, meta=dict(meta)) for k, m in people if m.actor == actor]
        record_human_labels(store, answers, actor, sets=sets)
    counts = Counter(m.source for _, m in fresh)
    return Imported(result.added, result.skipped, dict(counts), _marks(tasks) - len(fresh))


def _annotation(key: int, mark: Mark, meta: dict[str, str]) -> Annotation:
    return Annotation(key, mark.label, Source(mark.source), Kind(mark.kind), actor=mark.actor,
                      confidence=mark.confidence, meta=dict(meta))  # fmt: skip


def _keys(store: ProjectStore, ids: set[str]) -> dict[str, int]:
    """Store key of each of `ids` (all present after the import)."""
    return {item.id: item.key for batch in store.iter_items() for item in batch if item.id in ids}


def _marks(tasks: Sequence[Task]) -> int:
    return sum(len(t.marks) for t in tasks)


def import_file(
    store: ProjectStore, path: Path, fmt: str, text_key: str = "text", multi_label: bool = False
) -> Imported:
    """Read `path` as format `fmt`, check every task, then write them (nothing on a problem);
    `multi_label`: its labels are sets (the project's task)."""
    from agent.app.formats import check_source

    module = check_source(fmt, path)
    choices = Choices(store.label_set, multi_label)
    tasks = module.read(path, text_key, choices)
    check_tasks(tasks, path, choices, text_key)
    return apply_tasks(store, tasks, path, (fmt, multi_label))
