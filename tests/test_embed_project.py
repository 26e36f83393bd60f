"""A project's vectors streamed through its store (agent.embed.project): the same vectors as
embedding the items in hand, each text embedded once, a kill loses at most one chunk, and the
pages never hold more than one page of texts. Real SQLite stores on disk, the hashing embedder
(a real embedder, deterministic and quick) wrapped to count what it is asked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agent.embed import HashingEmbedder, embed_items
from agent.embed import project as project_module
from agent.embed.project import embed_project
from agent.errors import EmbeddingError
from agent.store.sqlite import Store
from agent.types import LabelSet

LABELS = LabelSet(("a", "b"))


class Counting(HashingEmbedder):
    """The hashing embedder, recording each batch and failing on call `fail_on` if set."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__(dim=32)
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if self.fail_on is not None and len(self.calls) + 1 == self.fail_on:
            raise KeyboardInterrupt("killed mid-run")
        self.calls.append(list(texts))
        return super().encode(texts, batch_size)


def project(tmp_path: Path, texts: Sequence[str]) -> Store:
    store = Store.create(tmp_path / "p", LABELS)
    store.add_items((f"r{i}", text, None) for i, text in enumerate(texts))
    return store


def corpus(n: int) -> list[str]:
    """n texts with some repeats (every 7th is an earlier one) and varied lengths."""
    texts = [f"message {i} " + "word " * (i % 13) for i in range(n)]
    for i in range(7, n, 7):
        texts[i] = texts[i - 7]
    return texts


def test_vectors_match_embedding_the_items_in_hand_and_repeats_are_embedded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project_module, "PAGE", 10)  # many pages, both passes
    texts = corpus(95)
    store = project(tmp_path, texts)
    embedder = Counting()
    keys, vectors = embed_project(store, embedder, batch_size=4)
    items = store.items()
    assert keys.tolist() == [it.key for it in items]
    expected = embed_items(items, HashingEmbedder(dim=32), Store.memory(LABELS))
    np.testing.assert_array_equal(vectors, expected)
    encoded = [t for call in embedder.calls for t in call]
    assert sorted(encoded) == sorted(set(texts))  # each distinct text once
    assert max(len(call) for call in embedder.calls) <= 4 * 16
    again = Counting()
    keys2, vectors2 = embed_project(store, again, batch_size=4)
    assert again.calls == [] and np.array_equal(vectors2, vectors) and np.array_equal(keys2, keys)


def test_a_kill_loses_at_most_one_chunk_and_a_rerun_embeds_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project_module, "PAGE", 16)
    texts = corpus(100)
    store = project(tmp_path, texts)
    with pytest.raises(KeyboardInterrupt):
        embed_project(store, Counting(fail_on=3), batch_size=1)  # chunks of 16 texts
    store.close()
    store = Store.open(tmp_path / "p")
    distinct = len(set(texts))
    assert store.count_missing_vectors(Counting().name) == distinct - 2 * 16
    rerun = Counting()
    keys, vectors = embed_project(store, rerun, batch_size=1)
    assert sum(len(c) for c in rerun.calls) == distinct - 2 * 16
    assert len(keys) == len(texts) and vectors.shape == (len(texts), 32)


def test_items_added_while_embedding_wait_for_the_next_pool(tmp_path: Path) -> None:
    store = project(tmp_path, corpus(20))

    class Importing(Counting):
        def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
            if not self.calls:  # another process imports mid-embedding
                store.add_items([("late", "a text that came late", None)])
            return super().encode(texts, batch_size)

    keys, vectors = embed_project(store, Importing(), batch_size=64)
    assert len(keys) == 20 and vectors.shape == (20, 32)
    keys, _ = embed_project(store, Counting(), batch_size=64)
    assert len(keys) == 21


def test_cached_vectors_of_another_width_are_refused_in_one_line(tmp_path: Path) -> None:
    store = project(tmp_path, ["one text", "another text"])
    hashes = [it.text_hash for it in store.items()]
    store.put_vectors(Counting().name, hashes[:1], np.ones((1, 8), dtype=np.float32))
    with pytest.raises(EmbeddingError, match="mixed widths"):
        embed_project(store, Counting())


def test_an_empty_project_gives_empty_arrays(tmp_path: Path) -> None:
    keys, vectors = embed_project(project(tmp_path, []), Counting())
    assert keys.shape == (0,) and vectors.shape == (0, 32)
