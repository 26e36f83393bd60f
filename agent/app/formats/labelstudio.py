"""Label Studio task JSON: `data`, `annotations` (people) and `predictions` (machines).

A task: {"data": {"text": ..., "id": ...}, "annotations": [{"result": [...], "completed_by":
..., "was_cancelled": false, "ground_truth": false}], "predictions": [{"model_version": ...,
"score": ..., "result": [...]}]}. A result item of a text classification is {"from_name":
"label", "to_name": "text", "type": "choices", "value": {"choices": ["<label>"]}}. An
annotation with no choice is "no label fits"; a cancelled (skipped) one is left out.
`completed_by` may be a user id, a name or an object with `email`/`username`/`id` (as Label
Studio exports it with `include=completed_by`).

A multi-label project's set is one result whose `value.choices` holds its names, for a
`<Choices ... choice="multiple">` tag (`setup` writes that labeling config). There an
annotation with no choice is an empty set, refused like any other; a prediction with none
says nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from agent.app.formats.choices import Choices
from agent.app.formats.jsonfile import Where, load_array, write_array
from agent.app.formats.model import Mark, Task, agent_name, machine_mark, person_mark, person_name

NAME = "label-studio"
SUFFIXES = (".json",)
FROM_NAME, TO_NAME = "label", "text"


def write(path: Path, tasks: Iterable[Task], choices: Choices, text_key: str) -> None:
    write_array(path, (_task_json(task, text_key, choices) for task in tasks))


def setup(choices: Choices, text_key: str) -> tuple[str, str]:
    """(file suffix, text) of the labeling config for a multi-label project's tasks."""
    options = "".join(f"\n    <Choice value={quoteattr(n)}/>" for n in choices.label_set.names)
    return ".config.xml", (
        f'<View>\n  <Text name="{TO_NAME}" value={quoteattr("$" + text_key)}/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="multiple">{options}\n'
        "  </Choices>\n</View>\n"
    )


def _task_json(task: Task, text_key: str, choices: Choices) -> dict[str, Any]:
    people = [m for m in task.marks if m.human]
    machines = [m for m in task.marks if not m.human and m.label is not None]
    return {
        "data": {text_key: task.text, "id": task.id},
        "annotations": [
            {
                "result": _result(m.label, choices),
                "completed_by": {"email": person_name(m)},
                "was_cancelled": False,
                "ground_truth": m.source != "human",
            }
            for m in people
        ],
        "predictions": [
            {"model_version": agent_name(m), "score": m.confidence,
             "result": _result(m.label, choices)}
            for m in machines
        ],
    }


def _result(label: str | None, choices: Choices) -> list[dict[str, Any]]:
    if label is None:
        return []
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
             "value": {"choices": choices.names(label)}}]  # fmt: skip


def read(path: Path, text_key: str, choices: Choices) -> list[Task]:
    return [_task(Where(path, n), raw, text_key, choices)
            for n, raw in enumerate(load_array(path), 1)]  # fmt: skip


def _task(where: Where, raw: Any, text_key: str, choices: Choices) -> Task:
    task = where.need(raw, dict, "task")
    data = where.need(task.get("data", task), dict, "data")
    text = data.get(text_key)
    ext_id = data.get("id", task.get("id"))
    if isinstance(ext_id, (str, int)) and not isinstance(ext_id, bool):
        ext_id = str(ext_id)
    elif ext_id is not None:
        raise where.fail("id must be text or a whole number", "data.id")
    marks: list[Mark] = []
    key = "annotations" if "annotations" in task else "completions"
    for i, ann in enumerate(where.need(task.get(key) or [], list, key)):
        field = f"{key}[{i}]"
        ann = where.need(ann, dict, field)
        if ann.get("was_cancelled"):
            continue
        label = _label(where, ann.get("result") or [], f"{field}.result", (choices, True))
        marks.append(person_mark(_user(where, ann.get("completed_by"), field), label))
    for i, pred in enumerate(where.need(task.get("predictions") or [], list, "predictions")):
        field = f"predictions[{i}]"
        pred = where.need(pred, dict, field)
        label = _label(where, pred.get("result") or [], f"{field}.result", (choices, False))
        score = pred.get("score")
        if score is not None:
            score = float(where.need(score, (int, float), f"{field}.score"))
        version = where.need(pred.get("model_version") or "", str, f"{field}.model_version")
        if label is not None:
            marks.append(machine_mark(version, label, score))
    return Task(ext_id or "", text, marks, where.record)


def _label(where: Where, result: Any, field: str, how: tuple[Choices, bool]) -> str | None:
    """The label a result list gives: one name, or a multi-label project's set (a person's
    set must hold a name: `how` is (choices, from a person))."""
    choices, person = how
    chosen = _chosen(where, result, field)
    if choices.multiple:
        return choices.read_set(where, chosen, field, required=person)
    if len(chosen) > 1:
        raise where.fail(f"{len(chosen)} choices; a labelagent project takes one label", field)
    if chosen:
        return where.need(chosen[0], str, f"{field}.value.choices")
    return None


def _chosen(where: Where, result: Any, field: str) -> list[Any]:
    """Every choice of a result list, over its regions."""
    chosen: list[Any] = []
    for j, region in enumerate(where.need(result, list, field)):
        region = where.need(region, dict, f"{field}[{j}]")
        value = where.need(region.get("value") or {}, dict, f"{field}[{j}].value")
        if "choices" in value:
            chosen += where.need(value["choices"], list, f"{field}[{j}].value.choices")
    return chosen


def _user(where: Where, user: Any, field: str) -> str:
    """An annotator's name from `completed_by`: a name, a user id or a user object."""
    if isinstance(user, dict):
        user = user.get("email") or user.get("username") or user.get("id")
    if user is None or user == "":
        return NAME
    if isinstance(user, int) and not isinstance(user, bool):
        return f"{NAME}-user-{user}"
    return where.need(user, str, f"{field}.completed_by")
