"""Label Studio, Argilla v2 and Prodigy files: a trec project goes out and comes back whole.

Real projects on disk, the real CLI (typer's CliRunner). Fixtures are hand-written after each
tool's documentation: Label Studio's task format, Argilla's `rg.Record` with suggestions and
responses, Prodigy's `db-out` lines.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.loop.record import HumanLabel, record_human_labels
from agent.routing.sources import counts_by_source, current_labels
from agent.store.sqlite import DB_FILE, Store
from agent.types import Annotation, Kind, QueueEntry, Source
from tests.fault_kit import db_digest

TREC = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "trec"
ROWS = 300
SUFFIX = {"label-studio": ".json", "argilla": ".json", "prodigy": ".jsonl"}


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stderr


def first_rows(csv_path: Path, n: int) -> list[dict[str, str]]:
    """The first `n` rows of a shared dataset's CSV (the test skips where it is absent)."""
    if not csv_path.is_file():
        pytest.skip(f"dataset file not found at {csv_path}")
    with csv_path.open(encoding="utf-8", newline="") as handle:
        return [row for _, row in zip(range(n), csv.DictReader(handle))]


def init_project(folder: Path, labels: Path, *flags: str) -> Path:
    """`labelagent init` with hashing vectors (and `flags`), which must succeed."""
    code, err = invoke("init", folder, "--labels", labels, *flags, "--embedding-model", "hashing")
    assert code == 0, err
    return folder


def trec_rows() -> list[dict[str, str]]:
    return first_rows(TREC / "train.csv", ROWS)


def new_project(folder: Path) -> Path:
    return init_project(folder, TREC / "labels.json")


@pytest.fixture(scope="module")
def trec_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 trec questions labelled by every source: corpus labels (0-39), two operators
    (40-99, two say none fits), LLM votes (100-249) and auto-accepts (100-179), classifier
    votes (100-299) and final-pass labels (180-259); 260-299 carry votes only."""
    rows = trec_rows()
    folder = new_project(tmp_path_factory.mktemp("interop") / "source")
    with Store.open(folder) as store:
        store.add_items([(f"q{i}", r["text"], r["label"] if i < 40 else None)
                         for i, r in enumerate(rows)])  # fmt: skip
        keys = {it.id: it.key for it in store.items()}
        gold = {keys[f"q{i}"]: r["label"] for i, r in enumerate(rows)}

        def note(i: int, source: Source, kind: Kind, actor: str, conf: float) -> Annotation:
            key = keys[f"q{i}"]
            return Annotation(key, gold[key], source, kind, actor=actor, confidence=conf)

        store.add_annotations(
            [note(i, Source.LLM, Kind.VOTE, "gpt-4o-mini", 0.5 + i % 50 / 100)
             for i in range(100, 250)]
            + [note(i, Source.MODEL, Kind.VOTE, "committee", 0.3 + i % 60 / 100)
               for i in range(100, 300)]
            + [note(i, Source.LLM, Kind.LABEL, "auto-accept", 0.97) for i in range(100, 180)]
            + [note(i, Source.MODEL, Kind.LABEL, "final-pass", 0.91) for i in range(180, 260)]
        )  # fmt: skip
        for actor, span in (("alice", range(40, 70)), ("bob", range(70, 100))):
            answers = [HumanLabel(keys[f"q{i}"], None if i in (41, 77) else gold[keys[f"q{i}"]])
                       for i in span]  # fmt: skip
            record_human_labels(store, answers, actor)
    return folder


def snapshot(folder: Path) -> dict[str, Any]:
    """Texts in order, each item's label with source and actor, LLM votes, counts by source."""
    with Store.open(folder) as store:
        items = store.items()
        by_key = {it.key: it.id for it in items}
        current = current_labels(store)
        votes = store.latest_votes(Source.LLM.value)
        return {
            "texts": [(it.id, it.text) for it in items],
            "labels": {by_key[k]: (c.label, c.source, c.actor) for k, c in current.items()},
            "llm_votes": {by_key[k]: (v["label"], v["confidence"]) for k, v in votes.items()},
            "by_source": counts_by_source(store),
        }


@pytest.mark.parametrize("fmt", ["label-studio", "argilla", "prodigy"])
def test_a_trec_project_comes_back_whole(fmt: str, trec_project: Path, tmp_path: Path) -> None:
    out = tmp_path / f"export{SUFFIX[fmt]}"
    code, err = invoke("export", trec_project, out, "--format", fmt)
    assert code == 0, err
    fresh = new_project(tmp_path / "fresh")
    code, err = invoke("import", fresh, out, "--format", fmt)
    assert code == 0, err
    before, after = snapshot(trec_project), snapshot(fresh)
    assert after["texts"] == before["texts"]
    assert after["labels"] == before["labels"]  # same label, source and annotator per item
    assert after["by_source"] == before["by_source"] == {
        "import": 40, "human": 58, "llm": 80, "model": 80}
    if fmt == "label-studio":  # every prediction goes out: the LLM's votes with their scores
        assert after["llm_votes"] == before["llm_votes"]
    code, err = invoke("import", fresh, out, "--format", fmt)  # twice: nothing new
    assert code == 0 and "imported 0 items" in err
    assert snapshot(fresh) == after


def test_label_studio_file_follows_the_task_format(trec_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "tasks.json"
    assert invoke("export", trec_project, out, "--format", "label-studio")[0] == 0
    tasks = json.loads(out.read_text(encoding="utf-8"))
    human = next(t for t in tasks if t["data"]["id"] == "q40")
    [ann] = human["annotations"]
    assert ann["completed_by"] == {"email": "alice"} and ann["was_cancelled"] is False
    assert ann["result"] == [{"from_name": "label", "to_name": "text", "type": "choices",
                              "value": {"choices": [trec_rows()[40]["label"]]}}]
    assert not human["predictions"]
    llm = next(t for t in tasks if t["data"]["id"] == "q120")
    versions = {p["model_version"]: p["score"] for p in llm["predictions"]}
    assert versions["labelagent.llm.label/auto-accept"] == pytest.approx(0.97)
    assert versions["labelagent.llm.vote/gpt-4o-mini"] == pytest.approx(0.7)
    assert "labelagent.model.vote/committee" in versions
    assert not llm["annotations"]


def test_answers_from_another_tool_close_the_queue(tmp_path: Path) -> None:
    """Review in Label Studio: its annotations come back as human labels by their annotators
    and complete the items' queue entries; cancelled ones are left out."""
    rows = trec_rows()[:5]
    folder = new_project(tmp_path / "p")
    with Store.open(folder) as store:
        store.add_items([(f"q{i}", r["text"], None) for i, r in enumerate(rows)])
        store.enqueue([QueueEntry(it.key, "disagree", 1.0) for it in store.items()])
    out = tmp_path / "review.json"
    assert invoke("export", folder, out, "--format", "label-studio")[0] == 0
    tasks = json.loads(out.read_text(encoding="utf-8"))
    choice = {"from_name": "label", "to_name": "text", "type": "choices"}
    tasks[0]["annotations"] = [{"result": [choice | {"value": {"choices": [rows[0]["label"]]}}],
                                "completed_by": {"id": 7, "email": "carol@example.org"}}]
    tasks[1]["annotations"] = [{"result": [choice | {"value": {"choices": ["HUM"]}}],
                                "completed_by": 3, "was_cancelled": True}]
    out.write_text(json.dumps(tasks), encoding="utf-8")
    code, err = invoke("import", folder, out, "--format", "label-studio")
    assert code == 0, err
    with Store.open(folder) as store:
        [row] = store.annotations(source="human", kind="label")
        assert (row["label"], row["actor"]) == (rows[0]["label"], "carol@example.org")
        assert json.loads(row["meta"])["imported_from"] == "label-studio"
        assert store.queue_counts() == {"done": 1, "pending": 4}


LS_EXPORT = [  # as Label Studio exports a text classification project
    {"id": 11, "data": {"text": "Who wrote Hamlet ?"}, "project": 2,
     "annotations": [{"id": 5, "completed_by": 1, "was_cancelled": False, "ground_truth": False,
                      "lead_time": 3.2, "result": [{"id": "a1", "from_name": "sentiment",
                                                    "to_name": "text", "type": "choices",
                                                    "value": {"choices": ["HUM"]}}]}],
     "predictions": [{"model_version": "bert-v3", "score": 0.61,
                      "result": [{"from_name": "sentiment", "to_name": "text",
                                  "type": "choices", "value": {"choices": ["ENTY"]}}]}]},
    {"id": 12, "data": {"text": "Where is Basel ?"}, "annotations": [], "predictions": []},
]  # fmt: skip
ARGILLA_EXPORT = [  # rg.Record.to_dict() of a dataset with a TextField and a LabelQuestion
    {"id": "r1", "fields": {"text": "What is a yak ?"}, "metadata": {}, "status": "completed",
     "suggestions": {"label": {"value": "DESC", "score": 0.8, "agent": "gpt-4o"}},
     "responses": {"label": [
         {"value": "ENTY", "user_id": "0c9d1a47-7c4a-4bd0-9f6e-6a1f3a0a2b11",
          "status": "submitted"},
         {"value": "DESC", "user_id": "9b2e6f10-1111-4a4a-8d8d-222233334444",
          "status": "draft"}]}},
    {"id": "r2", "fields": {"text": "How far is the moon ?"}, "status": "pending",
     "suggestions": [{"question_name": "label", "value": "NUM", "score": 0.55,
                      "agent": "labelagent.model.vote/committee"}],
     "responses": [{"question_name": "label", "value": None, "user_id": "u-1",
                    "status": "discarded"}]},
]  # fmt: skip
PRODIGY_DB_OUT = [  # `prodigy db-out` of textcat.manual (choice) and textcat.teach (binary)
    {"text": "Who is Ada Lovelace ?", "options": [{"id": "HUM", "text": "HUM"}],
     "accept": ["HUM"], "answer": "accept", "_annotator_id": "trec-ann1", "meta": {"id": "p1"},
     "_input_hash": 101, "_task_hash": 201, "_view_id": "choice"},
    {"text": "Who is Ada Lovelace ?", "options": [{"id": "HUM", "text": "HUM"}],
     "accept": [], "answer": "ignore", "_annotator_id": "trec-ann2", "meta": {"id": "p1"},
     "_input_hash": 101, "_task_hash": 202},
    {"text": "Where is Ulm ?", "label": "LOC", "score": 0.73, "meta": {"score": 0.73},
     "_input_hash": 102, "_task_hash": 203, "answer": "accept", "_session_id": "trec-s9"},
    {"text": "What is DNA ?", "label": "ABBR", "answer": "reject", "_input_hash": 103,
     "_task_hash": 204},
]  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        ("label-studio", json.dumps(LS_EXPORT), {
            "11": [("ENTY", "model", "vote", "bert-v3", 0.61),  # machines first, then people
                   ("HUM", "human", "label", "label-studio-user-1", None)],
            "12": []}),
        ("argilla", json.dumps(ARGILLA_EXPORT), {
            "r1": [("DESC", "model", "vote", "gpt-4o", 0.8),
                   ("ENTY", "human", "label", "argilla:0c9d1a47-7c4a-4bd0-9f6e-6a1f3a0a2b11",
                    None)],
            "r2": [("NUM", "model", "vote", "committee", 0.55),
                   (None, "human", "label", "argilla:u-1", None)]}),
        ("prodigy", "\n".join(map(json.dumps, PRODIGY_DB_OUT)), {
            "p1": [("HUM", "human", "label", "trec-ann1", None)],
            "102": [("LOC", "human", "label", "trec-s9", None)],
            "103": []}),
    ],
)  # fmt: skip
def test_files_written_by_the_tools_import(
    fmt: str, content: str, expected: dict[str, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    path = tmp_path / f"from-tool{SUFFIX[fmt]}"
    path.write_text(content, encoding="utf-8")
    folder = new_project(tmp_path / "p")
    code, err = invoke("import", folder, path, "--format", fmt)
    assert code == 0, err
    with Store.open(folder) as store:
        names = {it.key: it.id for it in store.items()}
        found: dict[str, list[tuple[Any, ...]]] = {i: [] for i in names.values()}
        for r in store.annotations():
            found[names[r["item_key"]]].append(
                (r["label"], r["source"], r["kind"], r["actor"], r["confidence"]))
    assert found == expected


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("label-studio", json.dumps([{"data": {"text": "ok"}}, {"data": {"text": ""}}]),
         "record 2, field 'text': empty or whitespace-only text"),
        ("label-studio", json.dumps([{"data": {"text": "a"}, "annotations": [{"result": [
            {"type": "choices", "value": {"choices": ["HUM", "LOC"]}}]}]}]),
         "record 1, field 'annotations[0].result': 2 choices"),
        ("label-studio", '[{"data": {"text": "a"}', "malformed JSON"),
        ("argilla", json.dumps([{"id": "a", "fields": {"text": "x"}, "responses": {"label": [
            {"value": "NOPE", "user_id": "u"}]}}]),
         "record 1, field 'label': label 'NOPE' is not in the label set"),
        ("argilla", json.dumps([{"id": "a", "fields": {"text": "x"}, "suggestions": {
            "label": {"value": ["HUM"], "score": 1}}}]),
         "record 1, field 'suggestions.label.value': expected text, found"),
        ("prodigy", '{"text": "a", "answer": "accept", "accept": ["HUM"]}\n{"text": 3}\n',
         "record 2, field 'text': text must be a string"),
        ("prodigy", '{"text": "a", "answer": "maybe", "label": "HUM"}\n',
         "record 1, field 'answer': answer 'maybe' is not accept, reject or ignore"),
    ],
)  # fmt: skip
def test_a_bad_file_is_named_and_writes_nothing(
    fmt: str, content: str, message: str, tmp_path: Path
) -> None:
    assert_import_refused(new_project(tmp_path / "p"), (fmt, content), message, "HUM")


def assert_import_refused(folder: Path, file: tuple[str, str], message: str, label: str) -> None:
    """Importing `file` (format, content) into `folder`, which holds one item labelled
    `label`, fails with exit 2 and one line naming the file and `message`; nothing written."""
    fmt, content = file
    path = folder.parent / f"bad{SUFFIX[fmt]}"
    path.write_text(content, encoding="utf-8")
    with Store.open(folder) as store:
        store.add_items([("keep", "an item already here", label)])
    digest = db_digest(folder / DB_FILE)
    code, err = invoke("import", folder, path, "--format", fmt)
    line = " ".join(err.split())
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(path) in line and message in line, line
    assert db_digest(folder / DB_FILE) == digest


def test_wrong_suffix_or_format_is_refused_before_the_project_opens(tmp_path: Path) -> None:
    folder = new_project(tmp_path / "p")
    code, err = invoke("export", folder, tmp_path / "x.csv", "--format", "prodigy")
    assert code == 2 and "a prodigy file ends in .jsonl" in err
    code, err = invoke("export", folder, tmp_path / "x.json", "--format", "doccano")
    assert code == 2 and "unknown format 'doccano'" in err
    assert not (tmp_path / "x.csv").exists()
