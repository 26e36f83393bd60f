"""The job stops asking people on its own word: a uniform audit, not a prediction, says the
target is reached; and a prediction the audit does not bear out keeps the job going."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from agent import JobLimits, LabelingSession, ProjectConfig, run_job
from agent.app.io import load_label_set
from agent.config import LLMConfig, RoutingConfig
from agent.labeller.labeller import Labeller
from agent.llm.annotators import make_annotator
from agent.loop.target import CHECKED_AT, CONFIRMED, audit_needed
from agent.types import Item, QueueEntry


def _job(
    datasets: Path, accuracy: float, target: float, budget: int,
    estimator: str = "prediction-powered",
) -> tuple[LabelingSession, str, dict[str, str]]:
    with (datasets / "trec" / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:1200]
    gold = {r["text"]: r["label"] for r in rows}
    label_set = load_label_set(datasets / "trec" / "labels.json")
    spec = f"simulated:acc={accuracy},abstain=0.0"
    config = ProjectConfig(
        embedding_model="hashing", batch_size=1200, seed=2,
        llm=LLMConfig(model=spec, few_shot_k=0),
        routing=RoutingConfig(trust_audits=30, estimator=estimator),
    )
    session = LabelingSession.from_texts(list(gold), label_set, config=config)
    session.backend = make_annotator(spec, label_set, gold, session.pool.label_vectors)
    labeller = Labeller(session.backend, label_set, config.llm, session.store)

    def oracle(item: Item, entry: QueueEntry) -> str:
        return gold[item.text]

    limits = JobLimits(rounds=None, batch_size=1200, human_budget=budget,
                       target_accuracy=target, human_per_round=40)
    report = run_job(session, limits, labeller, oracle)
    return session, report.stop_reason, gold


def _true_accuracy(session: LabelingSession, gold: dict[str, str]) -> float:
    session.reload_labels()
    names = session.label_set.names
    guess = session.best_guess()
    items = session.store.items()
    return float(np.mean([names[g] == gold[it.text] for g, it in zip(guess, items, strict=True)]))


@pytest.mark.parametrize("estimator", ["prediction-powered", "stratified-exact"])
def test_the_job_stops_once_an_audit_bears_the_target_out(datasets: Path, estimator: str) -> None:
    session, reason, gold = _job(datasets, 0.95, target=0.85, budget=800, estimator=estimator)
    assert reason.startswith(CONFIRMED), reason
    estimate = session.store.get_meta("estimated_accuracy")
    assert estimate["low"] >= 0.85 and estimate["method"] == estimator
    chances = {
        json.loads(row["meta"])["draw_chance"]
        for row in session.store.annotations(source="model", kind="vote")
        if json.loads(row["meta"] or "{}").get("stage") == "final_audit"
    }
    assert (len(chances) == 1) is (estimator == "stratified-exact")  # uniform draws, or not
    assert estimate["low"] <= _true_accuracy(session, gold) <= estimate["high"]
    humans = session.store.count_annotations(source="human", kind="label")
    assert humans < 800  # it stopped before the budget
    assert _true_accuracy(session, gold) >= 0.85


def test_a_target_out_of_reach_is_never_claimed(datasets: Path) -> None:
    session, reason, gold = _job(datasets, accuracy=0.5, target=0.99, budget=300)
    assert not reason.startswith(CONFIRMED), reason
    estimate = session.store.get_meta("estimated_accuracy")
    assert estimate is None or estimate["low"] < 0.99
    assert session.store.get_meta(CHECKED_AT) is None or _true_accuracy(session, gold) < 0.99


def test_an_audit_is_sized_less_the_earlier_answers_it_is_pooled_with() -> None:
    p_right, machine = np.full(1000, 0.97), np.ones(1000, dtype=bool)
    fresh = audit_needed(p_right, machine, target=0.9, level=0.95)
    assert fresh is not None and fresh > 20
    assert audit_needed(p_right, machine, 0.9, 0.95, earlier=20) == fresh - 20
    assert audit_needed(p_right, machine, 0.9, 0.95, earlier=fresh + 5) == 0
    assert audit_needed(np.full(1000, 0.9), machine, 0.9, 0.95, earlier=20) is None
