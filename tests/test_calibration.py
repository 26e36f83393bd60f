"""P(right) mapped onto what people's labels measure: the fit on constructed cases, and a job
whose exported confidences come to read like the share of its labels that are right."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from agent import JobLimits, LabelingSession, ProjectConfig, run_job
from agent.app.io import load_label_set
from agent.app.status import project_status
from agent.routing.calibration import MIN_VERDICTS, fit_calibration
from agent.types import Item, QueueEntry


def _sample(n: int, distort: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True P(right) (n,), the raw score that distorts its log-odds by `distort` (n,), and
    outcomes drawn at the true P(right) (n,)."""
    rng = np.random.default_rng(seed)
    true = rng.beta(6, 1.5, n)
    raw = 1 / (1 + np.exp(-distort * np.log(true / (1 - true))))
    return true, raw, rng.random(n) < true


@pytest.mark.parametrize("distort", [3.0, 0.3])  # overconfident, underconfident
def test_a_distorted_score_is_mapped_back_onto_the_share_right(distort: float) -> None:
    true, raw, right = _sample(3000, distort)
    fitted = fit_calibration(raw[:1000], right[:1000])
    mapped = fitted.apply(raw[1000:])
    assert abs(raw[1000:].mean() - true[1000:].mean()) > 0.05  # the raw score misleads
    assert abs(mapped.mean() - true[1000:].mean()) < 0.015
    assert np.abs(mapped - true[1000:]).mean() < 0.03  # item by item, not just on average


def test_the_map_keeps_the_raw_order_even_when_the_score_says_nothing() -> None:
    rng = np.random.default_rng(1)
    raw = rng.random(500)
    right = rng.random(500) < 0.8  # unrelated to the score
    fitted = fit_calibration(raw, right)
    ordered = fitted.apply(np.sort(raw))
    assert np.all(np.diff(ordered) > 0)
    assert abs(ordered.mean() - right.mean()) < 0.05


def test_too_few_or_one_sided_verdicts_leave_the_score_as_it_is() -> None:
    raw = np.linspace(0.3, 0.9, MIN_VERDICTS - 1)
    assert fit_calibration(raw, np.arange(raw.size) % 2 == 0).verdicts == 0
    many = np.linspace(0.3, 0.9, 200)
    unchanged = fit_calibration(many, np.ones(200, dtype=bool))
    assert unchanged.to_json()["method"] == "identity"
    assert np.array_equal(unchanged.apply(many), many)


def test_a_job_hands_over_confidences_that_read_like_its_accuracy(datasets: Path) -> None:
    with (datasets / "trec" / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:1500]
    gold = {r["text"]: r["label"] for r in rows}
    label_set = load_label_set(datasets / "trec" / "labels.json")
    # The real embedder: on hashing vectors the classifier is too weak for its scores to mean
    # much either way (trec 0.56 right), and the map then moves little.
    config = ProjectConfig(embedding_model="all-MiniLM-L6-v2", batch_size=100, seed=3)
    session = LabelingSession.from_texts(list(gold), label_set, config=config)

    def oracle(item: Item, entry: QueueEntry) -> str:
        return gold[item.text]

    run_job(session, JobLimits(rounds=4, batch_size=100, human_budget=240), None, oracle)
    session.reload_labels()
    machine = ~session.pool.human_mask
    names, guess = label_set.names, session.best_guess()
    right = np.array([names[g] == gold[it.text] for g, it in zip(guess, session.store.items())])
    truth = right[machine].mean()
    raw = session.scores.probs.max(axis=1)[machine]  # no LLM: the classifier's own P(right)
    calibrated = session.p_right()[machine]
    assert session.calibration().verdicts >= MIN_VERDICTS
    said = project_status(session.store)["p_right"]  # what `status` tells the operator
    assert said["method"] == "platt" and said["verdicts"] >= MIN_VERDICTS
    # measured: truth 0.73, the classifier's own P(right) 0.60 on average, mapped 0.74
    assert abs(raw.mean() - truth) > 0.1
    assert abs(calibrated.mean() - truth) < 0.05
    assert np.mean((calibrated - right[machine]) ** 2) < np.mean((raw - right[machine]) ** 2)
