"""Load a ../shared/datasets folder as arrays for simulation: pool and test splits, embedded once.

A dataset folder holds `train.csv` and `test.csv` (header `text,label`) and `labels.json`.
The train split becomes the pool (gold hidden from the systems), the test split measures the
classifier. Embeddings are cached on disk under `evals/.cache/<dataset>/` in a project Store
keyed by (model, text hash), so a dataset is embedded once across runs and processes.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.config import DEFAULT_EMBEDDING_MODEL
from agent.embed import Embedder, embed_items, make_embedder
from agent.errors import InputError, StoreError
from agent.store.sqlite import DB_FILE, Store
from agent.types import Item, LabelSet, text_hash

CACHE_DIR = Path(__file__).resolve().parent / ".cache"


@dataclass(frozen=True)
class Split:
    """One split as arrays: texts (n,), gold label indices y (n,) int64, vectors X (n, d)."""

    texts: list[str]
    y: np.ndarray
    X: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset ready to simulate on; `label_embeddings` (C, d) embed the label texts."""

    name: str
    label_set: LabelSet
    pool: Split
    test: Split
    label_embeddings: np.ndarray
    embedder: str


def read_labels(folder: Path) -> LabelSet:
    """The label set from `labels.json` (names, or objects with name and description)."""
    path = folder / "labels.json"
    try:
        return LabelSet.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read the label set: {exc}", file=str(path)) from None


def read_split(path: Path, label_set: LabelSet) -> tuple[list[str], np.ndarray]:
    """Texts and gold label indices (n,) from a `text,label` CSV; unknown labels are errors."""
    texts: list[str] = []
    labels: list[int] = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise InputError("header must hold 'text' and 'label'", file=str(path), row=1)
            for row_no, row in enumerate(reader, start=2):
                if row["label"] not in label_set:
                    raise InputError(
                        f"label '{row['label']}' is not in labels.json",
                        file=str(path), row=row_no, field="label",
                    )
                texts.append(row["text"])
                labels.append(label_set.index(row["label"]))
    except OSError as exc:
        raise InputError(f"cannot read the split: {exc.strerror}", file=str(path)) from None
    return texts, np.asarray(labels, dtype=np.int64)


def subsample(n_total: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded uniform subsample of `size` rows (all rows if None)."""
    if size is None or size >= n_total:
        return np.arange(n_total)
    if size < 1:
        raise ValueError(f"subsample size must be >= 1, got {size}")
    return np.sort(np.random.default_rng(seed).choice(n_total, size=size, replace=False))


def label_texts(label_set: LabelSet) -> list[str]:
    """What the zero-shot member embeds per label: its description, else its name made readable."""
    return [
        desc if desc else name.replace("_", " ").replace("/", " / ")
        for name, desc in zip(label_set.names, label_set.descriptions)
    ]


def open_cache(name: str, label_set: LabelSet, cache_dir: Path = CACHE_DIR) -> Store:
    """The on-disk vector cache for one dataset (a project Store), created on first use."""
    folder = cache_dir / name
    if (folder / DB_FILE).exists():
        return Store.open(folder)
    try:
        return Store.create(folder, label_set)
    except StoreError:  # another process created it in the meantime
        return Store.open(folder)


def embed_texts(texts: list[str], embedder: Embedder, cache: Store, progress: bool) -> np.ndarray:
    """Vectors (n, d) float32 for `texts`, embedding only what the cache lacks."""
    items = [Item(i, str(i), text, text_hash(text)) for i, text in enumerate(texts)]
    return embed_items(items, embedder, cache, progress=progress)


def load_dataset(
    folder: Path,
    *,
    pool_size: int | None = None,
    test_size: int | None = None,
    sample_seed: int = 0,
    test_split: str = "test",
    embedder: str = DEFAULT_EMBEDDING_MODEL,
    cache_dir: Path = CACHE_DIR,
    progress: bool = False,
) -> Dataset:
    """Read, subsample (seeded, the same pool for every run seed) and embed one dataset folder."""
    folder = Path(folder)
    label_set = read_labels(folder)
    splits = {}
    for role, file, size in (("pool", "train", pool_size), ("test", test_split, test_size)):
        texts, y = read_split(folder / f"{file}.csv", label_set)
        rows = subsample(len(texts), size, sample_seed)
        splits[role] = ([texts[i] for i in rows], y[rows])
    cache, model = open_cache(folder.name, label_set, cache_dir), make_embedder(embedder)
    try:
        vectors = {
            role: embed_texts(texts, model, cache, progress) for role, (texts, _) in splits.items()
        }
        label_vectors = embed_texts(label_texts(label_set), model, cache, progress=False)
    finally:
        cache.close()
    pool, test = (Split(splits[r][0], splits[r][1], vectors[r]) for r in ("pool", "test"))
    return Dataset(folder.name, label_set, pool, test, label_vectors, embedder)
