"""The evaluation harness: metrics, the simulated human, data loading, and a small end-to-end
run of `python -m evals.run` on a synthetic dataset (hashing embedder, so no model loads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.errors import InputError
from agent.store.sqlite import Store
from agent.types import text_hash
from evals import report, run
from evals.data import load_dataset, read_labels, read_split, subsample
from evals.metrics import (
    accuracy,
    aulc,
    corpus_labels,
    human_labels_to_target,
    mean_curve,
    mean_or_none,
)
from evals.sim import SimConfig, SimContext, human_answers

LABELS = ["sport", "money", "weather", "music"]
VOCAB = {
    "sport": "goal match team score league coach player stadium",
    "money": "bank price market stock loan profit dollar budget",
    "weather": "rain storm sunny cloud wind forecast snow cold",
    "music": "song band guitar album concert singer drum melody",
}
NOISE = ["the", "a", "today", "really", "some", "very", "new", "big"]


def _write_split(path: Path, n: int, rng: np.random.Generator) -> None:
    """n rows `text,label`: four words of the class, two noise words, sometimes a stray word."""
    lines = ["text,label"]
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        words = list(rng.choice(VOCAB[label].split(), 4)) + list(rng.choice(NOISE, 2))
        if rng.random() < 0.3:
            other = LABELS[int(rng.integers(len(LABELS)))]
            words.append(str(rng.choice(VOCAB[other].split())))
        lines.append(f"{' '.join(map(str, rng.permutation(words)))} {i},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    _write_split(folder / "train.csv", 160, rng)
    _write_split(folder / "test.csv", 60, rng)
    (folder / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    return folder


# ---- metrics --------------------------------------------------------------------------------
def test_accuracy_and_corpus_labels() -> None:
    gold = np.array([0, 1, 2, 3])
    predicted = np.array([0, 0, 0, 0])
    assert accuracy(predicted, gold) == 0.25
    merged = corpus_labels(predicted, np.array([1, 2]), gold[[1, 2]])
    assert merged.tolist() == [0, 1, 2, 0] and predicted.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        accuracy(np.zeros(3), np.zeros(4))


def test_aulc_is_a_normalised_trapezoid() -> None:
    assert aulc([0, 100], [0.5, 0.5], 0, 100) == pytest.approx(0.5)
    assert aulc([0, 100], [0.0, 1.0], 0, 100) == pytest.approx(0.5)
    assert aulc([0, 50, 100], [0.0, 1.0, 1.0], 0, 100) == pytest.approx(0.75)
    # past its last point a curve stays flat; a window cuts it
    assert aulc([0, 50], [0.0, 1.0], 0, 100) == pytest.approx(0.75)
    assert aulc([0, 100], [0.0, 1.0], 50, 100) == pytest.approx(0.75)
    assert aulc([0], [0.8], 0, 100) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        aulc([10, 0], [0.1, 0.2], 0, 10)


def test_human_labels_to_target_takes_the_first_point_that_reaches_it() -> None:
    curve = [(0, 0.5, 0.4), (25, 0.94, 0.8), (50, 0.95, 0.9), (75, 0.97, 0.9)]
    assert human_labels_to_target(curve, 0.95) == 50
    assert human_labels_to_target(curve, 0.99) is None


def test_mean_curve_aligns_different_grids() -> None:
    a = [(0, 0.0, 0.2), (10, 1.0, 0.4)]
    b = [(0, 0.5, 0.2), (5, 1.0, 0.6)]
    assert mean_curve([a, b]) == [[0, 0.25, 0.2], [5, 0.75, 0.45], [10, 1.0, 0.5]]
    assert mean_or_none([1.0, 3.0]) == 2.0
    assert mean_or_none([1.0, None]) is None


# ---- data and the simulated human -----------------------------------------------------------
def test_read_split_names_the_row_of_an_unknown_label(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text,label\nhello,sport\nbye,cooking\n", encoding="utf-8")
    (tmp_path / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    with pytest.raises(InputError, match="row 3"):
        read_split(path, read_labels(tmp_path))


def test_subsample_is_seeded_sorted_and_unique() -> None:
    a, b = subsample(1000, 100, seed=3), subsample(1000, 100, seed=3)
    assert a.tolist() == b.tolist() and np.unique(a).size == 100 and np.all(np.diff(a) > 0)
    assert subsample(10, None, 0).tolist() == list(range(10))


def test_load_dataset_caches_every_vector(dataset: Path, tmp_path: Path) -> None:
    data = load_dataset(dataset, pool_size=100, embedder="hashing", cache_dir=tmp_path / "c")
    assert data.pool.X.shape == (100, 384) and data.test.X.shape == (60, 384)
    assert data.label_embeddings.shape == (4, 384)
    store = Store.open(tmp_path / "c" / "tiny")
    hashes = [text_hash(t) for t in data.pool.texts + data.test.texts]
    assert len(store.get_vectors("hashing", hashes)) == len(set(hashes))
    store.close()


def test_simulated_human_errs_at_its_rate_and_never_echoes_gold(
    dataset: Path, tmp_path: Path
) -> None:
    data = load_dataset(dataset, embedder="hashing", cache_dir=tmp_path / "c")
    exact = SimContext(data, SimConfig(human_error=0.0))
    assert np.array_equal(human_answers(exact, 0), data.pool.y)
    noisy = SimContext(data, SimConfig(human_error=0.3))
    answers = human_answers(noisy, 1)
    wrong = np.mean(answers != data.pool.y)
    assert 0.15 < wrong < 0.45
    assert np.array_equal(answers, human_answers(SimContext(data, SimConfig(human_error=0.3)), 1))


# ---- end to end -----------------------------------------------------------------------------
def _run(dataset: Path, tmp_path: Path, out: str, *extra: str) -> dict[str, Any]:
    argv = [
        "--dataset",
        str(dataset),
        "--systems",
        "random,margin,committee",
        "--seeds",
        "2",
        "--budget",
        "60",
        "--step",
        "20",
        "--target",
        "0.9",
        "--embedder",
        "hashing",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / out),
        *extra,
    ]
    assert run.main(argv) == 0
    result: dict[str, Any] = json.loads((tmp_path / out).read_text(encoding="utf-8"))
    return result


def test_run_writes_the_documented_json(dataset: Path, tmp_path: Path) -> None:
    result = _run(dataset, tmp_path, "a.json", "--plot", str(tmp_path / "a.png"))
    assert result["dataset"] == "tiny" and result["pool_size"] == 160
    assert set(result["systems"]) == {"random", "margin", "committee"}
    for entry in result["systems"].values():
        keys = {
            "human_labels_to_target",
            "llm_calls",
            "final_corpus_accuracy",
            "test_accuracy",
            "aulc",
            "curve",
        }
        assert keys <= set(entry)
        assert [p[0] for p in entry["curve"]] == [0, 20, 40, 60]
        assert all(0.0 <= v <= 1.0 for p in entry["curve"] for v in p[1:])
        assert entry["llm_calls"] == 0 and 0.0 <= entry["aulc"] <= 1.0
        for seed in entry["seeds"]:
            assert seed["human_labels_to_target"] == human_labels_to_target(seed["curve"], 0.9)
    # the first labels are the same for every system in one seed
    firsts = {tuple(e["seeds"][0]["curve"][1]) for e in result["systems"].values()}
    assert len(firsts) == 1
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = report.render_table(result)
    assert table.count("\n| ") == 4  # header + three systems


def test_run_is_deterministic_per_seed(dataset: Path, tmp_path: Path) -> None:
    extra = ("--systems", "hybrid,coreset", "--seeds", "1")
    a, b = _run(dataset, tmp_path, "a.json", *extra), _run(dataset, tmp_path, "b.json", *extra)
    for name in a["systems"]:
        assert a["systems"][name]["curve"] == b["systems"][name]["curve"]


def test_whole_pool_labelled_by_an_exact_human_is_fully_correct(
    dataset: Path, tmp_path: Path
) -> None:
    result = _run(dataset, tmp_path, "c.json", "--budget", "160", "--step", "80")
    for entry in result["systems"].values():
        assert entry["curve"][-1][:2] == [160, 1.0]


def test_unknown_system_is_an_error_before_any_work(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--dataset",
        str(dataset),
        "--systems",
        "margin,nope",
        "--embedder",
        "hashing",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "x.json"),
    ]
    assert run.main(argv) == 2
    assert "unknown system 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_llm_baselines_run_the_real_labeller(dataset: Path, tmp_path: Path) -> None:
    systems = "llm-all,llm-random-review,llm-confidence,oracle-router"
    result = _run(dataset, tmp_path, "d.json", "--systems", systems, "--llm",
                  "simulated:acc=0.7", "--seeds", "1", "--budget", "80")
    s = result["systems"]
    assert [p[0] for p in s["llm-all"]["curve"]] == [0]
    assert 0.55 < s["llm-all"]["final_corpus_accuracy"] < 0.85
    assert all(e["llm_calls"] >= 150 for e in s.values())  # one call per distinct text
    # the oracle router fixes one LLM error per human label: exact labels to the 0.9 target
    wrong = round((1 - s["llm-all"]["final_corpus_accuracy"]) * 160)
    assert s["oracle-router"]["human_labels_to_target"] == max(0, wrong - 16)
    final = {name: e["final_corpus_accuracy"] for name, e in s.items()}
    assert final["oracle-router"] >= final["llm-confidence"] >= final["llm-all"]
    est = s["llm-random-review"]["estimated_accuracy"]
    assert 0.0 <= est["low"] <= est["value"] <= est["high"] <= 1.0
    assert "estimated_accuracy" not in s["llm-confidence"]


def test_llm_systems_need_an_annotator(dataset: Path, tmp_path: Path) -> None:
    argv = ["--dataset", str(dataset), "--systems", "llm-all", "--embedder", "hashing",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "x.json")]
    assert run.main(argv) == 2


def test_labelagent_system_runs_the_product_loop(dataset: Path, tmp_path: Path) -> None:
    result = _run(dataset, tmp_path, "la.json", "--systems", "llm-all,labelagent", "--llm",
                  "simulated:acc=0.7", "--seeds", "1", "--budget", "80")
    la, llm_all = result["systems"]["labelagent"], result["systems"]["llm-all"]
    assert la["curve"][-1][0] <= 80, "labelagent spent more human labels than its budget"
    assert la["llm_calls"] >= 150  # round one sends every distinct text to the LLM
    assert la["final_corpus_accuracy"] > llm_all["final_corpus_accuracy"]  # reviews fix errors
    est = la["estimated_accuracy"]
    assert 0.0 <= est["low"] <= est["value"] <= est["high"] <= 1.0
