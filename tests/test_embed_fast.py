"""The fast embedders: ONNX Runtime int8 and static (model2vec), both built from the bundled MiniLM.

Each is built once for the whole module into a temporary cache folder (the export takes seconds,
the distillation about half a minute), then checked on real texts from the shared trec dataset
against the torch model: shapes, unit norms, agreement, determinism, cache reuse, bad names.
"""

from __future__ import annotations

import csv
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.embed import SentenceTransformerEmbedder, make_embedder
from agent.embed.model_cache import CACHE_ENV, artifact_key, cached_artifact
from agent.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("model2vec")

TREC = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "trec" / "test.csv"
FALLBACK = [
    "How do I reset my password?",
    "What is the capital of Australia?",
    "Who wrote the novel Moby Dick?",
    "How far is the Moon from the Earth?",
]


def trec_texts(n: int = 48) -> list[str]:
    """The first `n` questions of trec's test split (a few fixed texts where it is absent)."""
    if not TREC.is_file():
        return FALLBACK
    with TREC.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for _, row in zip(range(n), csv.DictReader(handle))]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("labelagent-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return trec_texts()


@pytest.fixture(scope="module")
def reference(texts: list[str]) -> np.ndarray:
    """The torch MiniLM's vectors (n, 384) for `texts`."""
    return SentenceTransformerEmbedder().encode(texts)


@pytest.mark.parametrize(("name", "dim"), [("onnx-int8", 384), ("static", 256)])
def test_unit_vectors_of_the_right_shape(
    cache_dir: Path, texts: list[str], name: str, dim: int
) -> None:
    embedder = make_embedder(name)
    vectors = embedder.encode(texts, batch_size=16)
    assert embedder.name == f"all-MiniLM-L6-v2:{name}"
    assert vectors.shape == (len(texts), dim) == (len(texts), embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, dim)


def test_onnx_agrees_with_the_torch_model(
    cache_dir: Path, texts: list[str], reference: np.ndarray
) -> None:
    vectors = make_embedder("onnx-int8").encode(texts, batch_size=16)
    cosine = np.sum(vectors * reference, axis=1)
    assert cosine.min() >= 0.98, cosine.min()


def test_static_keeps_the_neighbourhoods(
    cache_dir: Path, texts: list[str], reference: np.ndarray
) -> None:
    """A weaker model, but its similarities still follow the teacher's (Spearman-like check)."""
    vectors = make_embedder("static").encode(texts)
    ours, theirs = vectors @ vectors.T, reference @ reference.T
    upper = np.triu_indices(len(texts), k=1)
    assert np.corrcoef(ours[upper], theirs[upper])[0, 1] > 0.5


@pytest.mark.parametrize("name", ["onnx-int8", "static"])
def test_deterministic(cache_dir: Path, texts: list[str], name: str) -> None:
    """Same texts, same vectors. A text's vector depends a little on its batch: int8
    activations are quantized with one scale per batch tensor (measured: cosine >= 0.99)."""
    first, second = make_embedder(name), make_embedder(name)
    np.testing.assert_array_equal(first.encode(texts), second.encode(texts))
    alone = np.vstack([first.encode([t]) for t in texts[:8]])
    assert np.sum(alone * first.encode(texts[:8]), axis=1).min() > 0.985


@pytest.mark.parametrize(
    ("name", "builder"),
    [
        ("onnx-int8", "agent.embed.onnx_export.export_int8"),
        ("static", "agent.embed.static._distill"),
    ],
)
def test_second_construction_reuses_the_cache(
    cache_dir: Path, texts: list[str], name: str, builder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_embedder(name).encode(texts[:2])  # built here or by an earlier test
    built = sorted(p for p in cache_dir.iterdir() if p.is_dir())
    stamps = {p: p.stat().st_mtime_ns for p in built}

    def no_second_build(*args: object) -> None:
        raise AssertionError("built twice")

    monkeypatch.setattr(builder, no_second_build)
    make_embedder(name).encode(texts[:2])
    assert {p: p.stat().st_mtime_ns for p in built} == stamps
    assert sorted(p for p in cache_dir.iterdir() if p.is_dir()) == built


def test_pickles_as_configuration(cache_dir: Path, texts: list[str]) -> None:
    embedder = make_embedder("onnx-int8")
    embedder.encode(texts[:1])
    clone = pickle.loads(pickle.dumps(embedder))
    assert clone.name == embedder.name
    np.testing.assert_array_equal(clone.encode(texts[:4]), embedder.encode(texts[:4]))


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("onnx-int4", "unknown embedder variant 'onnx-int4'"),
        ("all-MiniLM-L6-v2:fp16", "known: onnx-int8, static"),
        ("/no/such/model:onnx-int8", "'/no/such/model' is not a local sentence-transformers"),
        ("no-such-model:static", "not a local sentence-transformers model folder"),
    ],
)
def test_bad_names_are_config_errors(name: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        make_embedder(name)


def test_model_folder_must_mean_pool(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    with pytest.raises(ConfigError, match="only mean-pooled models"):
        make_embedder(f"{tmp_path}:onnx-int8")


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    """Two threads asking for a missing artifact at once: one builds, the other waits for it."""
    calls: list[int] = []

    def build(folder: Path) -> None:
        calls.append(1)
        time.sleep(0.2)
        (folder / "model.bin").write_text("done")

    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(cached_artifact("k", build, tmp_path)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert found == [tmp_path / "k"] * 2
    assert (tmp_path / "k" / "model.bin").read_text() == "done"


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    def build(folder: Path) -> None:
        (folder / "half").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cached_artifact("k", build, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["k.lock"]


def test_key_changes_with_the_model_files(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"1234")
    before = artifact_key("r", tmp_path, ["numpy"])
    (tmp_path / "weights.bin").write_bytes(b"12345")
    assert artifact_key("r", tmp_path, ["numpy"]) != before
    assert artifact_key("r", tmp_path, ["numpy"]).startswith("r-")
