"""Export from a real on-disk store to CSV, JSONL and Parquet: columns, order, safety, summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from agent.app.export import COLUMNS, export
from agent.config import RoutingConfig
from agent.errors import InputError
from agent.routing.accuracy import estimate_from_store
from agent.store.sqlite import Store
from agent.types import Annotation, Kind, LabelSet, QueueEntry, Source

LABELS = LabelSet(("refund", "card_lost", "other"))
TEXTS = ["I want my money back", "my card is gone", "hello, there\nsecond line", "just browsing"]


def read_back(path: Path) -> list[dict[str, Any]]:
    """Records as the file holds them; CSV cells are strings, empty for missing values."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Four items: a human label over an LLM one, an LLM label, a model label, none."""
    store = Store.create(tmp_path / "proj", LABELS)
    store.add_items((f"id{k}", text, None) for k, text in enumerate(TEXTS, start=1))
    store.add_annotations(
        [
            Annotation(3, "other", Source.MODEL, confidence=0.55, round=1),
            Annotation(2, "card_lost", Source.LLM, actor="gpt", confidence=0.9, prompt_hash="ph1"),
            Annotation(1, "other", Source.LLM, actor="gpt", confidence=0.6, prompt_hash="ph1"),
            Annotation(1, "refund", Source.HUMAN, actor="ann", round=2),
            Annotation(1, "other", Source.LLM, Kind.VOTE, confidence=0.6, rationale="old"),
            Annotation(1, "refund", Source.LLM, Kind.VOTE, confidence=0.7, rationale="asks"),
        ]
    )
    return store


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_item_in_input_order_with_label_and_provenance(
    store: Store, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / "out" / f"labels{suffix}"
    export(store, out)
    records = read_back(out)
    assert [r["id"] for r in records] == ["id1", "id2", "id3", "id4"]
    assert [r["text"] for r in records] == TEXTS
    assert list(records[0]) == COLUMNS
    assert [r["label"] for r in records] == ["refund", "card_lost", "other", ""]
    assert [r["source"] or "" for r in records] == ["human", "llm", "model", ""]
    first, second = records[0], records[1]
    assert (first["actor"], str(first["round"]), first["llm_label"]) == ("ann", "2", "refund")
    assert (first["llm_rationale"], float(first["llm_confidence"])) == ("asks", 0.7)
    assert (second["prompt_hash"], float(second["confidence"])) == ("ph1", 0.9)
    assert first["labelled_at"].startswith("20") and first["labelled_at"].endswith("+00:00")
    assert not any(p.name.endswith(".partial") for p in out.parent.iterdir())


def test_unlabelled_items_are_empty_not_missing(store: Store, tmp_path: Path) -> None:
    export(store, tmp_path / "o.jsonl")
    export(store, tmp_path / "o.parquet")
    for records in (read_back(tmp_path / "o.jsonl"), read_back(tmp_path / "o.parquet")):
        last = records[3]
        assert (last["label"], last["label_status"]) == ("", "none")
        empty = [c for c in COLUMNS if c not in ("id", "text", "label", "label_status")]
        assert all(last[c] is None for c in empty)


def test_every_row_has_a_final_label_and_a_status(store: Store, tmp_path: Path) -> None:
    """A person's label, an accepted machine label, the queue's best guess, none-fits and an
    item nobody scored each get the answer the estimate counts, with who proposed it."""
    store.add_items([("id5", "is this a refund?", None)])
    store.enqueue([
        QueueEntry(4, "disagree", 0.5, 1, {
            "first_opinion": "LLM", "llm": {"label": "other", "confidence": 0.8},
            "classifier": [["refund", 0.5], ["other", 0.3]], "best": "other", "p_wrong": 0.25,
        }),
    ])
    store.add_annotations([Annotation(5, None, Source.HUMAN, actor="ann", meta={"note": "spam"})])
    export(store, tmp_path / "o.csv")
    rows = read_back(tmp_path / "o.csv")
    answers = [(r["final_label"], r["label_status"], r["final_source"]) for r in rows]
    assert answers == [
        ("refund", "human", "human"),
        ("card_lost", "auto", "llm"),
        ("other", "auto", "classifier"),
        ("other", "suggested", "llm"),
        ("", "none", "human"),
    ]
    assert [r["answer_kind"] for r in rows] == ["label", "", "", "", "none_fits"]
    assert rows[3]["final_confidence"] == "0.75" and rows[3]["queue_reason"] == "disagree"
    assert (rows[3]["classifier_label"], rows[3]["classifier_confidence"]) == ("refund", "0.5")
    assert (rows[2]["classifier_label"], rows[4]["note"]) == ("other", "spam")
    summary = json.loads((tmp_path / "o.csv.summary.json").read_text(encoding="utf-8"))
    assert summary["by_status"] == {"human": 1, "auto": 2, "suggested": 1, "none": 1}


def test_a_retracted_label_is_not_exported(store: Store, tmp_path: Path) -> None:
    [human] = [a["id"] for a in store.annotations(source="human")]
    store.retract(human, actor="ann")
    export(store, tmp_path / "o.jsonl")
    first = read_back(tmp_path / "o.jsonl")[0]
    assert (first["label"], first["source"], first["confidence"]) == ("other", "llm", 0.6)


def test_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path: Path) -> None:
    hostile = ['=HYPERLINK("x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "plain = fine"]
    store = Store.create(tmp_path / "proj", LabelSet(("=cmd|' /C calc'!A0", "ok")))
    store.add_items((f"={k}", text, None) for k, text in enumerate(hostile))
    store.add_annotations([Annotation(1, "=cmd|' /C calc'!A0", Source.HUMAN, actor="@me")])
    export(store, tmp_path / "o.csv")
    records = read_back(tmp_path / "o.csv")
    assert [r["text"] for r in records] == ["'" + t for t in hostile[:5]] + ["plain = fine"]
    assert records[0]["id"] == "'=0"
    assert records[0]["label"] == "'=cmd|' /C calc'!A0" and records[0]["actor"] == "'@me"
    starts = ("=", "+", "-", "@", "\t", "\r")
    assert not any(v.startswith(starts) for r in records for v in r.values())
    export(store, tmp_path / "o.jsonl")  # JSONL is data, not a spreadsheet: text is kept as is
    assert [r["text"] for r in read_back(tmp_path / "o.jsonl")] == hostile


def test_summary_is_written_beside_the_file_and_into_parquet_metadata(
    store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "o.parquet"
    summary = export(store, out)
    beside = json.loads((tmp_path / "o.parquet.summary.json").read_text(encoding="utf-8"))
    assert beside == summary
    assert summary["items"] == 4 and summary["labelled"] == 3
    assert summary["by_source"] == {"human": 1, "llm": 1, "model": 1}
    estimate = estimate_from_store(store, RoutingConfig())  # the same figure `status` shows
    assert estimate is not None and summary["estimated_accuracy"] == estimate.to_json()
    assert summary["label_set"] == ["refund", "card_lost", "other"]
    metadata = pq.read_schema(out).metadata
    assert json.loads(metadata[b"labelagent.summary"]) == summary


def test_export_replaces_an_old_file_whole_and_refuses_unknown_formats(
    store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "o.csv"
    out.write_text("stale content that must disappear\n" * 1000, encoding="utf-8")
    export(store, out)
    assert "stale" not in out.read_text(encoding="utf-8")
    assert len(read_back(out)) == 4
    with pytest.raises(InputError, match=r"unknown export format '\.xlsx'") as err:
        export(store, tmp_path / "o.xlsx")
    assert err.value.file == str(tmp_path / "o.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv", "o.csv.summary.json", "proj"]
