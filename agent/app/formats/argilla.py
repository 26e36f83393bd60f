"""Argilla v2 records: `fields`, `suggestions` (a model's answer with score and agent) and
`responses` (people's answers), as `Dataset.records.to_json` writes them.

A record: {"id": ..., "fields": {"text": ...}, "metadata": {...}, "suggestions": {"label":
{"value": ..., "score": ..., "agent": ...}}, "responses": {"label": [{"value": ...,
"user_id": ..., "status": "submitted"}]}, "status": "completed"}. The SDK's list form
(`[{"question_name": "label", ...}]`) is read too. A question holds one suggestion, so the
item's machine label goes out, else the LLM's vote, else the classifier's. Argilla users are
UUIDs: a name goes out as a name-based UUID and the names in `metadata.annotators`, which turn
the UUIDs back into names; an unknown UUID stays `argilla:<uuid>`. A discarded response is "no
label fits"; a draft is left out.

A multi-label project's question is a `multi_label_selection` (`setup` writes the dataset
settings, as `rg.Settings.to_json` does): values are lists of names, and a suggestion's score
is a list of one score per name. The score written is the set's P(right) for each name (a set
is right only if each of its names is); a list read back counts as its smallest. A set holds
at least one name, so there a discarded response is left out and an empty one refused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.app.formats.choices import Choices
from agent.app.formats.jsonfile import Where, load_array, write_array
from agent.app.formats.model import (
    Mark,
    Task,
    agent_name,
    machine_mark,
    person_mark,
    person_name,
    suggestion,
)

NAME = "argilla"
SUFFIXES = (".json",)
QUESTION = "label"
_USERS = uuid.UUID("6c61626c-6167-656e-7461-7267696c6c61")  # namespace of name-based user ids


def user_id(name: str) -> str:
    return str(uuid.uuid5(_USERS, name))


def write(path: Path, tasks: Iterable[Task], choices: Choices, text_key: str) -> None:
    write_array(path, (_record_json(task, text_key, choices) for task in tasks))


def setup(choices: Choices, text_key: str) -> tuple[str, str]:
    """(file suffix, text) of the dataset settings for a multi-label project's records:
    a text field, the `multi_label_selection` question and room for the annotators' names."""
    options = [{"value": n, "text": n, "description": d or None}
               for n, d in zip(choices.label_set.names, choices.label_set.descriptions)]
    settings = {
        "guidelines": None,
        "allow_extra_metadata": True,  # metadata.annotators
        "fields": [{"name": text_key, "title": text_key, "required": True,
                    "settings": {"type": "text", "use_markdown": False}}],
        "questions": [{"name": QUESTION, "title": QUESTION, "description": None,
                       "required": True, "settings": {
                           "type": "multi_label_selection", "options": options,
                           "visible_options": None, "options_order": "natural"}}],
        "metadata": [],
        "vectors": [],
    }  # fmt: skip
    return ".settings.json", json.dumps(settings, indent=2, ensure_ascii=False) + "\n"


def _record_json(task: Task, text_key: str, choices: Choices) -> dict[str, Any]:
    people = [m for m in task.marks if m.human]
    names = [person_name(m) for m in people]
    record: dict[str, Any] = {
        "id": task.id,
        "fields": {text_key: task.text},
        "metadata": {"annotators": sorted(set(names))},
        "suggestions": {},
        "responses": {},
        "status": "completed" if people else "pending",
    }
    machine = suggestion(task.marks)
    if machine is not None:
        record["suggestions"][QUESTION] = {
            **_suggested(machine, choices), "agent": agent_name(machine),
        }
    if people:
        record["responses"][QUESTION] = [
            {"value": _out(m.label, choices), "user_id": user_id(name),
             "status": "submitted" if m.label is not None else "discarded"}
            for m, name in zip(people, names)
        ]  # fmt: skip
    return record


def _out(label: str | None, choices: Choices) -> Any:
    """A label as a value: the name, or a multi-label project's list of names."""
    if label is None or not choices.multiple:
        return label
    return choices.names(label)


def _suggested(machine: Mark, choices: Choices) -> dict[str, Any]:
    """A suggestion's value and score (a list of scores for a list of names)."""
    value, score = _out(machine.label, choices), machine.confidence
    if choices.multiple and score is not None:
        return {"value": value, "score": [score] * len(value)}
    return {"value": value, "score": score}


def read(path: Path, text_key: str, choices: Choices) -> list[Task]:
    return [_task(Where(path, n), raw, text_key, choices)
            for n, raw in enumerate(load_array(path), 1)]  # fmt: skip


def _task(where: Where, raw: Any, text_key: str, choices: Choices) -> Task:
    record = where.need(raw, dict, "record")
    fields = where.need(record.get("fields"), dict, "fields")
    ext_id = record.get("id", record.get("external_id"))
    if ext_id is not None:
        ext_id = str(where.need(ext_id, (str, int), "id"))
    metadata = where.need(record.get("metadata") or {}, dict, "metadata")
    names = metadata.get("annotators") or []
    known = {user_id(n): n for n in where.need(names, list, "metadata.annotators")
             if isinstance(n, str)}  # fmt: skip
    marks: list[Mark] = []
    for field, item in _answers(where, record.get("suggestions"), "suggestions"):
        value = _value(where, item.get("value"), f"{field}.value", (choices, False))
        score = _score(where, item.get("score"), f"{field}.score", choices)
        agent = where.need(item.get("agent") or "", str, f"{field}.agent")
        if value is not None:
            marks.append(machine_mark(agent, value, score))
    for field, item in _answers(where, record.get("responses"), "responses"):
        status = item.get("status", "submitted")
        if status == "draft" or (status == "discarded" and choices.multiple):
            continue
        value = None
        if status != "discarded":
            value = _value(where, item.get("value"), f"{field}.value", (choices, True))
        user = str(item.get("user_id") or "")
        marks.append(person_mark(known.get(user, f"{NAME}:{user}" if user else NAME), value))
    return Task(ext_id or "", fields.get(text_key), marks, where.record)


def _answers(where: Where, raw: Any, key: str) -> list[tuple[str, dict[str, Any]]]:
    """(field path, answer) of the label question, from the dict or the SDK's list form."""
    if raw is None:
        return []
    if isinstance(raw, list):
        items = [(f"{key}[{i}]", where.need(a, dict, f"{key}[{i}]")) for i, a in enumerate(raw)]
        return [(f, a) for f, a in items if a.get("question_name", QUESTION) == QUESTION]
    raw = where.need(raw, dict, key)
    if QUESTION not in raw and len(raw) > 1:
        raise where.fail(f"no question '{QUESTION}' among {', '.join(map(str, raw))}", key)
    name = QUESTION if QUESTION in raw else next(iter(raw), None)
    if name is None:
        return []
    value = raw[name]
    field = f"{key}.{name}"
    if isinstance(value, list):
        return [(f"{field}[{i}]", where.need(a, dict, f"{field}[{i}]"))
                for i, a in enumerate(value)]  # fmt: skip
    return [(field, where.need(value, dict, field))]


def _value(where: Where, value: Any, field: str, how: tuple[Choices, bool]) -> str | None:
    """One name, or a multi-label project's set (a person's must hold a name: `how` is
    (choices, from a person))."""
    choices, person = how
    if choices.multiple:
        return choices.read_set(where, value, field, required=person)
    if value is None:
        return None
    return where.need(value, str, field)


def _score(where: Where, score: Any, field: str, choices: Choices) -> float | None:
    """A suggestion's score; a multi-label project's list of scores counts as its smallest."""
    if choices.multiple and isinstance(score, list):
        scores = [float(where.need(s, (int, float), field)) for s in score]
        return min(scores) if scores else None
    if score is None:
        return None
    return float(where.need(score, (int, float), field))
