"""The session as a library user sees it, and the batch job end to end (in memory, real parts)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from agent import InputError, JobLimits, LabelingSession, ProjectConfig, run_job
from agent.app.io import load_label_set
from agent.config import LLMConfig, RoutingConfig
from agent.labeller.labeller import Labeller
from agent.llm.annotators import make_annotator
from agent.loop.final import final_audit
from agent.loop.job import answer_queue
from agent.routing.accuracy import estimate_from_store
from agent.routing.sources import counts_by_source
from agent.types import Item, QueueEntry


def _trec(datasets: Path, n: int) -> tuple[list[str], list[str], object]:
    with (datasets / "trec" / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:n]
    return [r["text"] for r in rows], [r["label"] for r in rows], load_label_set(
        datasets / "trec" / "labels.json"
    )


def _session(texts: list[str], label_set: object, **config: object) -> LabelingSession:
    cfg = ProjectConfig(embedding_model="hashing", batch_size=40, **config)  # type: ignore[arg-type]
    return LabelingSession.from_texts(texts, label_set, config=cfg)  # type: ignore[arg-type]


def test_library_query_submit_retrain(datasets: Path) -> None:
    texts, gold, label_set = _trec(datasets, 300)
    session = _session(texts, label_set)
    first = session.query(10)
    assert len({it.key for it in first}) == 10
    session.submit({it.id: gold[int(it.id)] for it in first}, actor="me")
    assert session.pool.human_mask.sum() == 10
    second = session.query(10)
    assert not {it.key for it in first} & {it.key for it in second}, "labelled items re-asked"
    session.retrain()
    labels, confidence = session.predictions()  # names, scikit-learn style
    assert labels.shape == confidence.shape == (300,)
    assert set(labels) <= set(session.label_set.names)
    for it in first:  # a human label is the item's label, and it is sure
        assert labels[int(it.id)] == gold[int(it.id)] and confidence[int(it.id)] == 1.0
    # every other item: the session's best guess (no job ran, so nothing is queued)
    names = np.array(session.label_set.names, dtype=object)
    assert list(labels) == list(names[session.best_guess()])


def test_the_pool_grows_when_items_are_added_to_the_store(datasets: Path) -> None:
    """Items imported while a session is open join its pool on the next look (the pool is
    rebuilt when the store's newest key moves, not on every read)."""
    texts, _, label_set = _trec(datasets, 60)
    session = _session(texts[:50], label_set)
    first = session.pool
    assert session.pool is first and len(first) == 50
    session.store.add_items([(f"late{i}", t, None) for i, t in enumerate(texts[50:])])
    assert len(session.pool) == 60
    assert session.items_at([len(session.pool) - 1])[0].id == "late9"


def test_submit_rejects_unknown_label_and_id(datasets: Path) -> None:
    texts, _, label_set = _trec(datasets, 20)
    session = _session(texts, label_set)
    with pytest.raises(InputError, match="not in the label set"):
        session.submit({"0": "NOT_A_LABEL"})
    with pytest.raises(InputError, match="unknown item id"):
        session.submit({"999": "HUM"})


def _oracle(gold_by_text: dict[str, str]):  # type: ignore[no-untyped-def]
    def oracle(item: Item, entry: QueueEntry) -> str:
        return gold_by_text[item.text]

    return oracle


def test_job_without_llm_respects_human_budget(datasets: Path) -> None:
    texts, gold, label_set = _trec(datasets, 400)
    session = _session(texts, label_set)
    report = run_job(session, JobLimits(rounds=5, batch_size=40, human_budget=60),
                     oracle=_oracle(dict(zip(texts, gold))))
    assert report.human_labels == 60
    humans = session.store.annotations(source="human", kind="label")
    assert all(row["actor"] == "oracle" for row in humans)
    assert session.store.get_meta("estimated_accuracy") is not None


def test_job_with_simulated_llm_auto_accepts_and_estimate_covers_truth(datasets: Path) -> None:
    texts, gold, label_set = _trec(datasets, 1200)
    gold_by_text = dict(zip(texts, gold))
    session = _session(
        texts, label_set, routing=RoutingConfig(target_precision=0.85, min_evidence=30),
        llm=LLMConfig(model="simulated:acc=0.95,abstain=0.02", few_shot_k=0),
    )
    session.backend = make_annotator("simulated:acc=0.95,abstain=0.02", label_set, gold_by_text,
                                     session.pool.label_vectors)
    labeller = Labeller(session.backend, session.label_set, session.config.llm, session.store)
    limits = JobLimits(rounds=12, batch_size=100, human_budget=400, human_per_round=30)
    report = run_job(session, limits, labeller, _oracle(gold_by_text))
    by_source = counts_by_source(session.store)
    assert by_source.get("llm", 0) > 0, f"nothing auto-accepted: {report.stop_reason}"
    assert report.human_labels <= 400
    assert report.llm_calls <= 12 * 100
    session.reload_labels()
    guess = session.best_guess()  # the estimate speaks of labels, else suggested labels
    names = session.label_set.names
    items = session.store.items()
    truth = np.mean([names[g] == gold_by_text[it.text] for g, it in zip(guess, items, strict=True)])
    estimate = session.store.get_meta("estimated_accuracy")
    assert estimate["low"] <= truth <= estimate["high"], (truth, estimate)


def test_an_item_queued_again_by_the_final_audit_keeps_its_llm_answer(datasets: Path) -> None:
    texts, gold, label_set = _trec(datasets, 300)
    spec = "simulated:acc=0.8,abstain=0.0"
    session = _session(texts, label_set, llm=LLMConfig(model=spec, few_shot_k=0))
    session.backend = make_annotator(spec, label_set, dict(zip(texts, gold)),
                                     session.pool.label_vectors)
    labeller = Labeller(session.backend, session.label_set, session.config.llm, session.store)
    run_job(session, JobLimits(rounds=1, batch_size=100, human_budget=0), labeller, None)
    pending = {k: v for k, v in session.store.queue_views().items() if v.state == "pending"}
    asked = {k: v.suggestion["llm"] for k, v in pending.items() if v.suggestion["llm"]}
    assert asked  # the LLM's answers wait for review
    final_audit(session, round_no=99, size=3000)  # draws nearly every machine-labelled item
    after = session.store.queue_views()
    assert sum(after[k].reason == "audit" for k in asked) > len(asked) // 2
    assert all(after[k].suggestion["llm"] == view for k, view in asked.items())


def test_the_estimate_pools_every_answered_audit(datasets: Path) -> None:
    """Three audits (the job's own, then two more looks): the prediction-powered estimate
    rests on the draws of all, each weighed within its own audit, and narrows with each."""
    texts, gold, label_set = _trec(datasets, 400)
    gold_by_text = dict(zip(texts, gold))
    spec = "simulated:acc=0.85,abstain=0.0"
    session = _session(texts, label_set, llm=LLMConfig(model=spec, few_shot_k=0))
    session.backend = make_annotator(spec, label_set, gold_by_text, session.pool.label_vectors)
    labeller = Labeller(session.backend, session.label_set, session.config.llm, session.store)
    oracle = _oracle(gold_by_text)
    run_job(session, JobLimits(rounds=1, batch_size=100, human_budget=60), labeller, oracle)
    answer_queue(session, oracle, None, 97)  # the rest of the job's own audit
    session.reload_labels()
    first = estimate_from_store(session.store, session.config.routing)
    assert first is not None and first.audits
    widths, audits = [first.high - first.low], [first.audits]
    for look in (98, 99):
        drawn = final_audit(session, round_no=look, size=40)
        assert drawn > 0
        answer_queue(session, oracle, None, look)
        session.reload_labels()
        estimate = estimate_from_store(session.store, session.config.routing)
        assert estimate is not None and estimate.method == "prediction-powered"
        widths.append(estimate.high - estimate.low)
        audits.append(estimate.audits)
    assert audits == [audits[0], audits[0] + 40, audits[0] + 80]  # every audit's draws count
    assert widths[2] < widths[1] < widths[0]
