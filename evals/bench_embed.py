"""Our embedding path against a bare `SentenceTransformer.encode` on the same texts.

(a) bare: `SentenceTransformer(path).encode(texts, batch_size, normalize_embeddings=True)`;
(b) ours, cold: `embed_items` through a fresh in-memory Store (hashing, dedupe, length sort,
    chunked cache writes); (c) ours, warm: the same call again, all from the cache;
(d) ours, cold, on a real on-disk project Store (WAL, fsync per chunk), shown for reference;
(e) `embed_items` with a table-lookup embedder: the cost of our bookkeeping without the model;
(f) the ONNX Runtime int8 embedder's `encode` and (g) the same through `embed_items`, cold;
(h) the static (model2vec) embedder's `encode` and (i) the same through `embed_items`, cold.
(a), (b), (f)-(i) alternate `--rounds` times on the shared machine, in reversed order every
other round; the best of each counts. Models are loaded, built (ONNX export, distillation) and
warmed before any timing. Last line: `embed_ratio=<(b)/(a)> onnx_int8_speedup=<(f)/(a)>
static_speedup=<(h)/(a)> onnx_int8_min_cosine=<lowest cosine of (f) to (a)>`, wall-clock.

    .venv/bin/python -m evals.bench_embed [--data ../shared/datasets/ag_news/train.csv]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.embed import (
    Embedder,
    OnnxInt8Embedder,
    SentenceTransformerEmbedder,
    StaticEmbedder,
    embed_items,
)
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, text_hash

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "ag_news" / "train.csv"
LABELS = LabelSet(("unused",))


NAMES = {
    "bare": "(a) bare SentenceTransformer.encode",
    "ours_cold": "(b) embed_items, cold, memory store",
    "ours_warm": "(c) embed_items, warm cache",
    "ours_cold_disk": "(d) embed_items, cold, disk store",
    "bookkeeping": "(e) embed_items minus the model",
    "onnx": "(f) onnx-int8 encode",
    "onnx_cold": "(g) onnx-int8 embed_items, cold",
    "static": "(h) static encode",
    "static_cold": "(i) static embed_items, cold",
}


def read_texts(path: Path, n: int) -> list[str]:
    """The first `n` distinct non-blank texts of a `text,...` CSV, so both paths do equal work."""
    texts: dict[str, None] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("text") or "").strip()
            if text:
                texts.setdefault(text, None)
            if len(texts) == n:
                break
    if len(texts) < n:
        raise SystemExit(f"{path}: only {len(texts)} distinct texts, {n} wanted")
    return list(texts)


@dataclass
class Best:
    """Fastest wall-clock and CPU seconds seen for one path (CPU time of all our threads is
    steadier than wall time when other jobs share the cores)."""

    wall: float = float("inf")
    cpu: float = float("inf")
    last: str = ""
    cosine: float = float("nan")  # lowest cosine to bare encode, where comparable

    def add(self, wall: float, cpu: float) -> None:
        self.wall, self.cpu = min(self.wall, wall), min(self.cpu, cpu)
        self.last = f"{wall:.2f} s ({cpu:.2f} cpu-s)"


def timed(run: Callable[[], np.ndarray], best: Best) -> np.ndarray:
    """Run once, record its wall and CPU seconds in `best`, return what it returned."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    best.add(time.perf_counter() - wall, time.process_time() - cpu)
    return result


class Replay:
    """An embedder that looks vectors up in a table: timing `embed_items` with it measures
    our bookkeeping alone (hashing, dedupe, cache reads and writes, sorting, assembly)."""

    name = "replay"

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        self.table = dict(zip(texts, vectors, strict=True))
        self.dim = vectors.shape[1]

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def ours_cold(embedder: Embedder, items: list[Item], batch: int, store: Store) -> np.ndarray:
    """`embed_items` into an empty `store`, which is closed afterwards."""
    with store:
        return embed_items(items, embedder, store, batch_size=batch)


def alternate(
    runs: dict[str, Callable[[], np.ndarray]], best: dict[str, Best], rounds: int
) -> dict[str, np.ndarray]:
    """Time each run once per round, reversing the order every other round; last outputs."""
    out: dict[str, np.ndarray] = {}
    for r in range(rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for key in order:
            out[key] = timed(runs[key], best[key])
        print(f"round {r + 1}: " + ", ".join(f"{key} {best[key].last}" for key in order))
    return out


def bench(data: Path, n: int, batch: int, rounds: int) -> dict[str, Best]:
    """Best timings of each path; also checks that both paths give the same vectors."""
    from sentence_transformers import SentenceTransformer

    texts = read_texts(data, n)
    items = [Item(i + 1, str(i), t, text_hash(t)) for i, t in enumerate(texts)]
    ours, onnx, static = SentenceTransformerEmbedder(), OnnxInt8Embedder(), StaticEmbedder()
    bare = SentenceTransformer(ours.model_path, device="cpu")
    bare.encode(texts[:batch], batch_size=batch, normalize_embeddings=True)  # warm all
    for embedder in (ours, onnx, static):
        embedder.encode(texts[:batch], batch_size=batch)  # builds the ONNX / static caches

    best = {key: Best() for key in NAMES}
    out = alternate(
        {
            "bare": lambda: bare.encode(texts, batch_size=batch, normalize_embeddings=True),
            "ours_cold": lambda: ours_cold(ours, items, batch, Store.memory(LABELS)),
            "onnx": lambda: onnx.encode(texts, batch_size=batch),
            "onnx_cold": lambda: ours_cold(onnx, items, batch, Store.memory(LABELS)),
            "static": lambda: static.encode(texts, batch_size=batch),
            "static_cold": lambda: ours_cold(static, items, batch, Store.memory(LABELS)),
        },
        best,
        rounds,
    )
    for key in ("ours_cold", "onnx"):
        cosine = np.sum(out["bare"] * out[key], axis=1)
        low, mean = cosine.min(), cosine.mean()
        print(f"cosine of {NAMES[key]} to bare: lowest {low:.4f}, mean {mean:.4f}")
        best[key].cosine = float(cosine.min())

    with Store.memory(LABELS) as store:
        embed_items(items, ours, store, batch_size=batch)
        timed(lambda: embed_items(items, ours, store, batch_size=batch), best["ours_warm"])
    replay = Replay(texts, out["bare"])
    timed(lambda: ours_cold(replay, items, batch, Store.memory(LABELS)), best["bookkeeping"])
    with tempfile.TemporaryDirectory() as tmp:
        disk = Store.create(Path(tmp), LABELS)
        timed(lambda: ours_cold(ours, items, batch, disk), best["ours_cold_disk"])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV with a text column")
    parser.add_argument("--n", type=int, default=5000, help="distinct texts to embed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of (a) and (b)")
    args = parser.parse_args()
    best = bench(args.data, args.n, args.batch_size, args.rounds)
    wall = {key: args.n / b.wall for key, b in best.items()}
    cpu = {key: args.n / b.cpu for key, b in best.items()}
    print(f"\n{args.n} texts from {args.data}, batch size {args.batch_size}, best of {args.rounds}")
    print(
        f"| {'path':<36} | {'texts/s':>9} | {'vs bare':>7} | {'texts/cpu-s':>11} | {'vs bare':>7} |"
    )
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 9}|{'-' * 13}|{'-' * 9}|")
    for key, label in NAMES.items():
        print(
            f"| {label:<36} | {wall[key]:>9.1f} | {wall[key] / wall['bare']:>7.3f} "
            f"| {cpu[key]:>11.1f} | {cpu[key] / cpu['bare']:>7.3f} |"
        )
    print(
        f"embed_ratio={wall['ours_cold'] / wall['bare']:.3f} "
        f"onnx_int8_speedup={wall['onnx'] / wall['bare']:.2f} "
        f"static_speedup={wall['static'] / wall['bare']:.1f} "
        f"onnx_int8_min_cosine={best['onnx'].cosine:.4f}"
    )


if __name__ == "__main__":
    main()
