"""Prodigy JSONL, as `prodigy db-out` writes a text classification dataset: one line per answer.

A choice task: {"text": ..., "options": [{"id": "<label>", "text": "<label>"}, ...],
"accept": ["<label>"], "answer": "accept", "_annotator_id": ..., "_input_hash": ...,
"_task_hash": ..., "meta": {"id": ...}}. A binary task carries "label" instead of options.
A line without "answer" is a pre-annotation: the machines' suggestion, its score and agent in
"meta". Answers: accept = the chosen label; reject = no label fits (of a binary task: "not
this label", left out); ignore = left out. Lines of one item share `meta.id` (else the input
hash); the hashes are stable 32-bit integers of the text (input) and of text and answer (task).

A multi-label project's lines are multiple-choice tasks (`textcat.manual` without
`--exclusive`; `config.choice_style` "multiple"): `accept` lists the set's names. There accept
with none is an empty set, refused; reject and ignore are left out (a set holds at least one
name); and a binary line is refused, since accepting one label says nothing of the others.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from agent.app.formats.choices import Choices
from agent.app.formats.jsonfile import Where, load_lines, write_lines
from agent.app.formats.model import (
    Mark,
    Task,
    agent_name,
    machine_mark,
    person_mark,
    person_name,
    suggestion,
)

NAME = "prodigy"
SUFFIXES = (".jsonl",)


def stable_hash(*parts: Any) -> int:
    """A signed 32-bit integer of `parts` (Prodigy's hashes are 32-bit ints)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def write(path: Path, tasks: Iterable[Task], choices: Choices, text_key: str) -> None:
    options = [{"id": name, "text": name} for name in choices.label_set.names]
    write_lines(path, (line for task in tasks for line in _lines(task, options, choices)))


def setup(choices: Choices, text_key: str) -> None:
    """No settings file: each line of a multi-label project carries its choice style."""
    return None


def _lines(
    task: Task, options: list[dict[str, str]], choices: Choices
) -> Iterator[dict[str, Any]]:
    base = {"text": task.text, "options": options, "meta": {"id": task.id},
            "_input_hash": stable_hash(task.text)}  # fmt: skip
    if choices.multiple:
        base["config"] = {"choice_style": "multiple"}
    people = [m for m in task.marks if m.human]
    for mark in people:
        name = person_name(mark)
        accept = choices.names(mark.label)
        answer = "accept" if accept else "reject"
        yield base | {"accept": accept, "answer": answer, "_annotator_id": name,
                      "_session_id": f"labelagent-{name}", "_view_id": "choice",
                      "_task_hash": stable_hash(task.text, accept, answer, name)}  # fmt: skip
    machine = suggestion(task.marks)
    if machine is not None:
        meta = {"id": task.id, "score": machine.confidence, "agent": agent_name(machine)}
        accept = choices.names(machine.label)
        yield base | {"accept": accept, "meta": meta,
                      "_task_hash": stable_hash(task.text, accept)}  # fmt: skip
    elif not people:
        yield base | {"_task_hash": stable_hash(task.text, [])}


def read(path: Path, text_key: str, choices: Choices) -> list[Task]:
    tasks: dict[str, Task] = {}
    for record, raw in load_lines(path):
        where = Where(path, record)
        line = where.need(raw, dict, "line")
        meta = where.need(line.get("meta") or {}, dict, "meta")
        ext_id = meta.get("id", line.get("_input_hash"))
        ext_id = str(where.need(ext_id, (str, int), "meta.id")) if ext_id is not None else ""
        key = ext_id or f"{path.name}:{record}"
        text = line.get(text_key)
        task = tasks.setdefault(key, Task(ext_id, text, [], record))
        if task.text != text:
            raise where.fail(f"id '{key}' has another text on record {task.record}", text_key)
        mark = _set_mark(where, line, (meta, choices)) if choices.multiple else _mark(
            where, line, meta)  # fmt: skip
        if mark is not None:
            task.marks.append(mark)
    return list(tasks.values())


def _mark(where: Where, line: dict[str, Any], meta: dict[str, Any]) -> Mark | None:
    """The mark one line leaves: a person's answer, a pre-annotation or nothing."""
    choice = "options" in line or "accept" in line
    chosen = where.need(line.get("accept") or [], list, "accept") if choice else []
    if choice and len(chosen) > 1:
        raise where.fail(f"{len(chosen)} labels accepted; a labelagent project takes one",
                         "accept")  # fmt: skip
    label = chosen[0] if chosen else (None if choice else line.get("label"))
    if label is not None:
        label = str(where.need(label, (str, int), "accept" if choice else "label"))
    answer = _answer(where, line)
    if answer is None:
        return _machine(where, line, meta, label) if label is not None else None
    if answer == "ignore" or (answer == "reject" and not choice):
        return None
    return person_mark(_annotator(where, line), label if answer == "accept" else None)


def _set_mark(where: Where, line: dict[str, Any], how: tuple[dict[str, Any], Choices]
              ) -> Mark | None:  # fmt: skip
    """The mark one line of a multi-label project leaves (see the module docstring)."""
    meta, choices = how
    if "options" not in line and "accept" not in line:
        if line.get("label") is not None:
            raise where.fail("a binary answer accepts one label and says nothing of the others; "
                             "a multi-label project takes choice lines (options, accept)",
                             "label")  # fmt: skip
        return None
    answer = _answer(where, line)
    accepted = line.get("accept") or []
    if answer is None:
        label = choices.read_set(where, accepted, "accept", required=False)
        return _machine(where, line, meta, label) if label is not None else None
    if answer != "accept":
        return None
    label = choices.read_set(where, accepted, "accept", required=True)
    return person_mark(_annotator(where, line), label)


def _answer(where: Where, line: dict[str, Any]) -> str | None:
    """A line's answer (None: a pre-annotation)."""
    answer = line.get("answer")
    if answer is not None and answer not in ("accept", "reject", "ignore"):
        raise where.fail(f"answer '{answer}' is not accept, reject or ignore", "answer")
    return answer


def _machine(where: Where, line: dict[str, Any], meta: dict[str, Any], label: str) -> Mark:
    """A pre-annotation's mark: its agent and score from `meta`."""
    score = meta.get("score", line.get("score"))
    if score is not None:
        score = float(where.need(score, (int, float), "meta.score"))
    agent = where.need(meta.get("agent") or NAME, str, "meta.agent")
    return machine_mark(agent, label, score)


def _annotator(where: Where, line: dict[str, Any]) -> str:
    name = line.get("_annotator_id") or line.get("_session_id") or NAME
    return where.need(name, str, "_annotator_id")
