"""Label Studio, Argilla v2 and Prodigy files of a multi-label project (issue 21): sets go out
in each tool's multi-choice form and come back as the same sets, stored as every other set
input stores them; a bad set is one line naming file, record and field, exit 2, nothing written.

Real projects on disk (GoEmotions comments and their gold sets), the real CLI. The files
written by the tools are hand-written after their documentation: Label Studio's `choices`
result of a `choice="multiple"` tag, Argilla's `multi_label_selection` records, Prodigy's
`textcat.manual` (non-exclusive) `db-out` lines.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from agent.loop.record import HumanLabel, record_human_labels
from agent.store.sqlite import Store
from agent.types import Annotation, Kind, QueueEntry, Source, decode_label_set, encode_label_set
from tests.test_interop import (
    SUFFIX,
    assert_import_refused,
    first_rows,
    init_project,
    invoke,
    snapshot,
)

GO = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "go_emotions"
ROWS = 120


def go_rows() -> list[dict[str, str]]:
    return first_rows(GO / "dev.csv", ROWS)


def new_project(folder: Path) -> Path:
    return init_project(folder, GO / "labels.json", "--multi-label")


def seed_file(tmp: Path, rows: list[dict[str, str]], seeded: int) -> Path:
    """id,text,labels CSV: the first `seeded` rows with their gold sets, the rest without."""
    path = tmp / "corpus.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "labels"])
        for i, r in enumerate(rows):
            writer.writerow([f"g{i}", r["text"], r["labels"] if i < seeded else ""])
    return path


@pytest.fixture(scope="module")
def go_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 comments with sets from every source: corpus sets (0-19, by `import`), two
    operators (20-39), LLM votes with scores (40-109, each the next comment's set) and
    auto-accepts (40-69), classifier final-pass sets (70-99); 100-109 carry votes only."""
    rows = go_rows()
    tmp = tmp_path_factory.mktemp("interop-sets")
    folder = new_project(tmp / "source")
    code, err = invoke("import", folder, seed_file(tmp, rows, 20), "--id-col", "id",
                       "--label-col", "labels")  # fmt: skip
    assert code == 0, err
    with Store.open(folder) as store:
        keys = {it.id: it.key for it in store.items()}

        def encoded(i: int) -> str:  # the canonical text, as the corpus import stores it
            return encode_label_set(rows[i % ROWS]["labels"].split("|"), store.label_set)

        def note(i: int, source: Source, kind: Kind, actor: str, conf: float) -> Annotation:
            set_of = encoded(i + 1) if kind == Kind.VOTE else encoded(i)
            return Annotation(keys[f"g{i}"], set_of, source, kind, actor=actor, confidence=conf)

        store.add_annotations(
            [note(i, Source.LLM, Kind.VOTE, "gpt-4o-mini", 0.4 + i % 50 / 100)
             for i in range(40, 110)]
            + [note(i, Source.LLM, Kind.LABEL, "auto", 0.93) for i in range(40, 70)]
            + [note(i, Source.MODEL, Kind.LABEL, "classifier", 0.5 + i % 40 / 100)
               for i in range(70, 100)]
        )  # fmt: skip
        for actor, span in (("alice", range(20, 30)), ("bob", range(30, 40))):
            answers = [HumanLabel(keys[f"g{i}"], encoded(i)) for i in span]
            record_human_labels(store, answers, actor, sets=True)
    return folder


@pytest.mark.parametrize("fmt", ["label-studio", "argilla", "prodigy"])
def test_a_multi_label_project_comes_back_with_the_same_sets(
    fmt: str, go_project: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"export{SUFFIX[fmt]}"
    code, err = invoke("export", go_project, out, "--format", fmt)
    assert code == 0, err
    fresh = new_project(tmp_path / "fresh")
    code, err = invoke("import", fresh, out, "--format", fmt)
    assert code == 0, err
    before, after = snapshot(go_project), snapshot(fresh)
    assert after["texts"] == before["texts"]
    assert after["labels"] == before["labels"]  # the same set, source and annotator per item
    assert after["by_source"] == before["by_source"] == {
        "import": 20, "human": 20, "llm": 30, "model": 30}
    assert any(len(decode_label_set(label) or ()) > 1 for label, _, _ in after["labels"].values())
    if fmt == "label-studio":  # every prediction goes out: the LLM's sets with their scores
        assert after["llm_votes"] == before["llm_votes"]
    code, err = invoke("import", fresh, out, "--format", fmt)  # twice: nothing new
    assert code == 0 and "imported 0 items" in err
    assert snapshot(fresh) == after


def test_each_file_is_the_tools_multi_choice_form(go_project: Path, tmp_path: Path) -> None:
    rows = go_rows()
    two = next(i for i in range(20, 40) if "|" in rows[i]["labels"])  # a person's set of 2+
    names = rows[two]["labels"].split("|")
    ls, ar, pr = (tmp_path / name for name in ("ls.json", "argilla.json", "prodigy.jsonl"))
    for fmt, out in (("label-studio", ls), ("argilla", ar), ("prodigy", pr)):
        code, err = invoke("export", go_project, out, "--format", fmt)
        assert code == 0 and (fmt == "prodigy" or "multi-label settings" in err), err
    [task] = [t for t in json.loads(ls.read_text()) if t["data"]["id"] == f"g{two}"]
    assert sorted(task["annotations"][0]["result"][0]["value"]["choices"]) == sorted(names)
    config = Path(f"{ls}.config.xml").read_text()
    assert '<Choices name="label" toName="text" choice="multiple">' in config
    assert config.count("<Choice value=") == 28 and '<Choice value="admiration"/>' in config
    [record] = [r for r in json.loads(ar.read_text()) if r["id"] == f"g{two}"]
    assert sorted(record["responses"]["label"][0]["value"]) == sorted(names)
    [machine] = [r for r in json.loads(ar.read_text()) if r["id"] == "g45"]
    suggested = machine["suggestions"]["label"]
    assert len(suggested["score"]) == len(suggested["value"])  # one score per name
    settings = json.loads(Path(f"{ar}.settings.json").read_text())
    [question] = settings["questions"]
    assert question["settings"]["type"] == "multi_label_selection"
    assert [o["value"] for o in question["settings"]["options"]][:2] == ["admiration", "amusement"]
    lines = [json.loads(line) for line in pr.read_text().splitlines()]
    [answer] = [x for x in lines if x["meta"]["id"] == f"g{two}" and "answer" in x]
    assert sorted(answer["accept"]) == sorted(names) and answer["answer"] == "accept"
    assert answer["config"] == {"choice_style": "multiple"} and len(answer["options"]) == 28


def test_sets_from_the_tools_are_stored_as_a_corpus_import_stores_them(tmp_path: Path) -> None:
    """Each tool's multi-choice answer lands as the canonical text the corpus import writes
    for the same set (`joy|anger` in a CSV), whatever order or regions the tool used."""
    corpus = new_project(tmp_path / "corpus")
    (tmp_path / "c.csv").write_text("id,text,labels\nx,so glad and so cross,joy|anger\n")
    assert invoke("import", corpus, tmp_path / "c.csv", "--id-col", "id",
                  "--label-col", "labels")[0] == 0  # fmt: skip
    with Store.open(corpus) as store:
        [want] = [r["label"] for r in store.annotations()]
    region = {"from_name": "emotions", "to_name": "text", "type": "choices"}
    files = {
        "label-studio": json.dumps([{"id": 7, "data": {"text": "so glad and so cross"},
            "annotations": [{"completed_by": 3, "result": [
                region | {"value": {"choices": ["joy"]}},
                region | {"value": {"choices": ["anger"]}}]}],
            "predictions": [{"model_version": "roberta-ml", "score": 0.4,
                             "result": [region | {"value": {"choices": ["joy", "anger"]}}]}]}]),
        "argilla": json.dumps([{"id": "7", "fields": {"text": "so glad and so cross"},
            "suggestions": {"emotions": {"value": ["joy", "anger"], "score": [0.9, 0.4],
                                         "agent": "roberta-ml"}},
            "responses": {"emotions": [{"value": ["joy", "anger"], "user_id": "u-3",
                                        "status": "submitted"},
                                       {"value": None, "user_id": "u-4",
                                        "status": "discarded"}]}}]),
        "prodigy": "\n".join(json.dumps(line) for line in [
            {"text": "so glad and so cross", "options": [{"id": "joy"}, {"id": "anger"}],
             "accept": ["joy", "anger"], "meta": {"id": "7", "score": 0.4,
                                                  "agent": "roberta-ml"}},
            {"text": "so glad and so cross", "options": [{"id": "joy"}, {"id": "anger"}],
             "accept": ["joy", "anger"], "answer": "accept", "_annotator_id": "ann-3",
             "meta": {"id": "7"}, "config": {"choice_style": "multiple"}},
            {"text": "so glad and so cross", "options": [{"id": "joy"}],
             "accept": [], "answer": "reject", "_annotator_id": "ann-4", "meta": {"id": "7"}}]),
    }  # fmt: skip
    for fmt, content in files.items():
        path = tmp_path / f"{fmt}{SUFFIX[fmt]}"
        path.write_text(content, encoding="utf-8")
        folder = new_project(tmp_path / fmt)
        code, err = invoke("import", folder, path, "--format", fmt)
        assert code == 0, err
        with Store.open(folder) as store:
            found = [(r["source"], r["kind"], r["label"], r["confidence"])
                     for r in store.annotations()]  # fmt: skip
        # one person's set (a discarded or rejected answer leaves none), one machine vote
        assert found == [("model", "vote", want, 0.4), ("human", "label", want, None)], fmt


def test_answers_given_in_label_studio_close_the_queue_with_their_sets(tmp_path: Path) -> None:
    rows = go_rows()[:4]
    folder = new_project(tmp_path / "p")
    with Store.open(folder) as store:
        store.add_items([(f"g{i}", r["text"], None) for i, r in enumerate(rows)])
        store.enqueue([QueueEntry(it.key, "disagree", 1.0) for it in store.items()])
    out = tmp_path / "review.json"
    assert invoke("export", folder, out, "--format", "label-studio")[0] == 0
    tasks = json.loads(out.read_text(encoding="utf-8"))
    tasks[0]["annotations"] = [{"completed_by": {"email": "carol@example.org"}, "result": [
        {"from_name": "label", "to_name": "text", "type": "choices",
         "value": {"choices": ["sadness", "anger"]}}]}]  # fmt: skip
    out.write_text(json.dumps(tasks), encoding="utf-8")
    code, err = invoke("import", folder, out, "--format", "label-studio")
    assert code == 0, err
    with Store.open(folder) as store:
        [row] = store.annotations(source="human", kind="label")
        assert (row["label"], row["actor"]) == ('["anger","sadness"]', "carol@example.org")
        assert store.queue_counts() == {"done": 1, "pending": 3}


def _ls(annotation: list[Any] | None = None, prediction: list[Any] | None = None) -> str:
    region = {"from_name": "label", "to_name": "text", "type": "choices"}
    task: dict[str, Any] = {"data": {"text": "grr and yay"}}
    if annotation is not None:
        task["annotations"] = [{"result": [region | {"value": {"choices": c}}
                                           for c in annotation]}]  # fmt: skip
    if prediction is not None:
        task["predictions"] = [{"result": [region | {"value": {"choices": prediction}}]}]
    return json.dumps([{"data": {"text": "a fine first one"}}, task])


def _argilla(response: Any = None, suggestion: Any = None) -> str:
    record: dict[str, Any] = {"id": "r2", "fields": {"text": "grr and yay"}}
    if response is not None:
        record["responses"] = {"label": [{"value": response, "user_id": "u", "status":
                                          "submitted"}]}  # fmt: skip
    if suggestion is not None:
        record["suggestions"] = {"label": {"value": suggestion, "score": 0.5}}
    return json.dumps([{"id": "r1", "fields": {"text": "a fine first one"}}, record])


def _prodigy(**line: Any) -> str:
    first = {"text": "a fine first one", "options": [{"id": "joy"}], "accept": ["joy"],
             "answer": "accept", "meta": {"id": "p1"}}  # fmt: skip
    return "\n".join(json.dumps(x) for x in (first, {"text": "grr and yay"} | line)) + "\n"


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("label-studio", _ls([["joy", "rage"]]),
         "record 2, field 'annotations[0].result': label 'rage' is not in the label set"),
        ("label-studio", _ls([["joy"], ["anger", "joy"]]),
         "record 2, field 'annotations[0].result': label 'joy' appears twice in the set"),
        ("label-studio", _ls([]),
         "record 2, field 'annotations[0].result': empty label set"),
        ("label-studio", _ls(prediction=["glee"]),
         "record 2, field 'predictions[0].result': label 'glee' is not in the label set"),
        ("argilla", _argilla(["anger", "rage"]),
         "record 2, field 'responses.label[0].value': label 'rage' is not in the label set"),
        ("argilla", _argilla(suggestion=["joy", "joy"]),
         "record 2, field 'suggestions.label.value': label 'joy' appears twice in the set"),
        ("argilla", _argilla([]),
         "record 2, field 'responses.label[0].value': empty label set"),
        ("argilla", _argilla(["joy", 3]),
         "record 2, field 'responses.label[0].value': labels in a set must be text"),
        ("prodigy", _prodigy(accept=["joy", "rage"], answer="accept"),
         "record 2, field 'accept': label 'rage' is not in the label set"),
        ("prodigy", _prodigy(accept=["anger", "anger"], answer="accept"),
         "record 2, field 'accept': label 'anger' appears twice in the set"),
        ("prodigy", _prodigy(options=[{"id": "joy"}], accept=[], answer="accept"),
         "record 2, field 'accept': empty label set"),
        ("prodigy", _prodigy(label="joy", answer="accept"),
         "record 2, field 'label': a binary answer accepts one label"),
    ],
)  # fmt: skip
def test_a_bad_set_is_named_and_writes_nothing(
    fmt: str, content: str, message: str, tmp_path: Path
) -> None:
    assert_import_refused(new_project(tmp_path / "p"), (fmt, content), message, '["joy"]')
