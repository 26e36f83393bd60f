"""The Ray engine (issue 12 part 3): `run --engine ray` gives what `--engine local` gives.

Pool-wide embedding and scoring run as Ray Data `map_batches` over the local engine's batch
functions, so on the same seed and data the labels, the review queue and the accuracy
estimate are the same, and so are the cached vectors, bit for bit. One local Ray instance
(2 CPUs) serves the module (the session fixture `ray_local`); the refusals need no Ray.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.app.commands import resolve_engine
from agent.batch import LocalEngine, make_engine
from agent.config import ProjectConfig
from agent.embed import HashingEmbedder
from agent.errors import ConfigError, EngineError, InputError
from agent.learn.committee import Committee
from agent.store.sqlite import Store

# Export columns that say when, not what: they differ between any two runs.
WHEN = ("created_at", "at", "time", "timestamp")


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


def trec_slice(datasets: Path, folder: Path, rows: int) -> Path:
    """The first `rows` rows of trec's train split as text,label (corpus and oracle both)."""
    with (datasets / "trec" / "train.csv").open(encoding="utf-8", newline="") as handle:
        data = list(csv.DictReader(handle))[:rows]
    path = folder / f"trec{rows}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in data)
    return path


def run_project(
    datasets: Path, folder: Path, corpus: Path, engine: str, model: str, rounds: int
) -> dict[str, Any]:
    """init, import, run (simulated LLM, the oracle answering), export; what came out."""
    project = folder / engine
    labels = datasets / "trec" / "labels.json"
    assert invoke("init", project, "--labels", labels, "--embedding-model", model)[0] == 0
    assert invoke("import", project, corpus)[0] == 0
    code, _, err = invoke("run", project, "--engine", engine, "--llm", "simulated:acc=0.85",
                          "--oracle-file", corpus, "--rounds", rounds, "--batch-size", 30,
                          "--human-budget", 60)  # fmt: skip
    assert code == 0, err
    out = folder / f"{engine}.csv"
    assert invoke("export", project, out)[0] == 0
    with out.open(encoding="utf-8", newline="") as handle:
        rows = [{k: v for k, v in r.items() if not k.endswith(WHEN)}
                for r in csv.DictReader(handle)]  # fmt: skip
    status = invoke("status", project, "--json")[1].replace(str(project), "PROJECT")
    with Store.open(project) as store:
        items = store.items()
        vectors = store.get_vectors(model, [it.text_hash for it in items])
        queue = [asdict(entry) for entry in store.pending()]
    return {"rows": rows, "status": status, "queue": queue, "vectors": vectors}


def assert_same_run(local: dict[str, Any], ray: dict[str, Any]) -> None:
    assert ray["rows"] == local["rows"]  # every final label, status, source and confidence
    assert ray["queue"] == local["queue"] and local["queue"]  # same items, order, reasons
    assert ray["status"] == local["status"]  # the accuracy estimate and its interval too
    assert ray["vectors"].keys() == local["vectors"].keys()
    assert all(np.array_equal(v, ray["vectors"][h]) for h, v in local["vectors"].items())


@pytest.mark.usefixtures("ray_local")
def test_run_on_ray_gives_the_local_runs_labels_queue_and_estimate(
    datasets: Path, tmp_path: Path
) -> None:
    corpus = trec_slice(datasets, tmp_path, 800)
    local = run_project(datasets, tmp_path, corpus, "local", "hashing", rounds=3)
    ray = run_project(datasets, tmp_path, corpus, "ray", "hashing", rounds=3)
    assert_same_run(local, ray)
    assert json.loads(ray["status"])["estimated_accuracy"]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_real_embedder_on_ray_gives_the_same_vectors_and_run(
    datasets: Path, tmp_path: Path
) -> None:
    """The bundled MiniLM, built in each Ray worker from its name, on 250 rows."""
    corpus = trec_slice(datasets, tmp_path, 250)
    local = run_project(datasets, tmp_path, corpus, "local", "all-MiniLM-L6-v2", rounds=2)
    ray = run_project(datasets, tmp_path, corpus, "ray", "all-MiniLM-L6-v2", rounds=2)
    assert_same_run(local, ray)


@pytest.mark.usefixtures("ray_local")
def test_ray_scores_equal_local_scores_block_by_block() -> None:
    """40,000 rows: three blocks, scored in Ray tasks and put back in pool order."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40_000, 16)).astype(np.float32)
    label_vectors = rng.normal(size=(5, 16)).astype(np.float32)
    committee = Committee(n_members=3, random_state=0)
    committee.fit(vectors[:150], rng.integers(0, 4, 150), 5, prior_embeddings=label_vectors)
    ray = make_engine("ray")
    want = LocalEngine().score(committee, vectors, label_vectors)
    got = ray.score(committee, vectors, label_vectors)
    for name, a, b in zip(want._fields, want, got):
        assert a.shape == b.shape, name
        # Ray's workers run BLAS on one thread (OMP_NUM_THREADS=1), the driver on all cores:
        # a member's float32 probability may round one unit apart (seen on 0.03 % of them);
        # the committee's mean, which labels and ranks, is equal to the bit.
        if name == "members":
            assert np.allclose(a, b, rtol=0.0, atol=4e-7), name
        else:
            assert np.array_equal(a, b), name
    empty = ray.score(committee, vectors[:0], label_vectors)
    assert empty.probs.shape == (0, 5) and empty.members.shape == (3, 0, 5)
    assert list(ray.embed_chunks(HashingEmbedder(), [], 8)) == []
    ray.close()  # found running: left up for the session


def test_without_ray_run_engine_ray_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    (tmp_path / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "c.csv").write_text("text\none\ntwo\n", encoding="utf-8")
    project = tmp_path / "p"
    invoke("init", project, "--labels", tmp_path / "labels.txt", "--embedding-model", "hashing")
    invoke("import", project, tmp_path / "c.csv")
    code, _, err = invoke("run", project, "--engine", "ray", "--rounds", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "pip install 'labelagent[ray]'" in err
    with pytest.raises(EngineError, match="not installed"):
        make_engine("ray")


def test_the_engine_flags_resolve_against_the_project_config() -> None:
    saved = ProjectConfig(engine="ray", ray_address="ray://head:10001")
    assert resolve_engine(saved, None, None).engine == "ray"  # the project's choice
    assert resolve_engine(saved, "local", None).ray_address is None
    implied = resolve_engine(ProjectConfig(), None, "auto")
    assert (implied.engine, implied.ray_address) == ("ray", "auto")
    with pytest.raises(InputError, match="--ray-address is for --engine ray"):
        resolve_engine(ProjectConfig(), "local", "auto")
    with pytest.raises(ConfigError, match="needs the ray engine"):
        make_engine("local", "auto")
    with pytest.raises(ConfigError, match="known: local, ray"):
        make_engine("spark")


def test_a_custom_embedder_object_is_refused_on_ray() -> None:
    pytest.importorskip("ray.data", reason="the ray extra is not installed")
    from agent.batch.raydata import portable_name

    class Custom(HashingEmbedder):
        pass

    assert portable_name(HashingEmbedder(dim=32, seed=1)) == "hashing-32-s1"
    with pytest.raises(EngineError, match="cannot be rebuilt from its name"):
        portable_name(Custom())


def test_the_local_engine_never_imports_ray(tmp_path: Path) -> None:
    code = (
        "import sys, agent, agent.app.cli, agent.loop.session\n"
        "from agent.loop.session import LabelingSession\n"
        "s = LabelingSession.from_texts(['a b', 'c d'], ['x', 'y'], embedder=None)\n"
        "assert s.engine.name == 'local'\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
