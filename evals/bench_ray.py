"""The Ray engine against the local one on the pool-wide work (issue 12 part 3).

Builds `--rows` distinct texts with bench_scale's corpus builder, then times, per engine, the
two stages that `run --engine ray` moves onto Ray Data: (1) embedding every row through
`embed_items` into a fresh in-memory project store (the driver writes the vector cache, as in
a run), and (2) scoring the pool: the committee (fitted once on `--labelled` gold rows) over
every vector, main member, bootstrap members and zero-shot. Both engines run the same batch
functions on the same chunks and blocks; the results are checked to be identical. Ray's
start-up (a local instance of `--num-cpus` CPUs) is timed on its own, outside the stages.
Prints a side-by-side table; last line `ray_vs_local=<Ray seconds / local seconds over both
stages>` (above 1: Ray is slower here).

    .venv/bin/python -m evals.bench_ray --rows 100000 [--embedder static] [--num-cpus 2]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.app.io import load_label_set
from agent.batch import Engine, LocalEngine
from agent.embed import embed_items, make_embedder
from agent.learn.committee import Committee
from agent.learn.pool_scores import PoolScores
from agent.loop.pool import label_texts
from agent.store.sqlite import Store
from evals.bench_scale import DEFAULT_DATA, build_corpus


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = step()
    return time.perf_counter() - start, result


def read_corpus(corpus: Path, gold: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(id, text) rows and their gold labels, in corpus order."""
    with corpus.open(encoding="utf-8", newline="") as handle:
        rows = [(r["id"], r["text"]) for r in csv.DictReader(handle)]
    with gold.open(encoding="utf-8", newline="") as handle:
        labels = {r["id"]: r["label"] for r in csv.DictReader(handle)}
    return rows, [labels[i] for i, _ in rows]


def embed_stage(
    engine: Engine, rows: list[tuple[str, str]], args: argparse.Namespace
) -> tuple[float, np.ndarray]:
    """Seconds to embed every row into a fresh store's cache on `engine`, and the vectors."""
    store = Store.memory(load_label_set(args.data / "labels.json"))
    store.add_items(((i, text, None) for i, text in rows), source_file="bench")
    items, embedder = store.items(), make_embedder(args.embedder)
    embedder.encode(["warm up"])  # the driver's model is loaded before timing, as in a run
    seconds, vectors = timed(
        lambda: embed_items(items, embedder, store, batch_size=args.batch_size, engine=engine)
    )
    store.close()
    return seconds, vectors


def fitted_committee(
    vectors: np.ndarray, gold: list[str], args: argparse.Namespace
) -> tuple[Committee, np.ndarray]:
    """The committee on `--labelled` random gold rows, and the label vectors (C, d)."""
    label_set = load_label_set(args.data / "labels.json")
    label_vectors = make_embedder(args.embedder).encode(label_texts(label_set))
    rng = np.random.default_rng(0)
    rows = rng.choice(len(vectors), size=min(args.labelled, len(vectors)), replace=False)
    y = np.array([label_set.index(gold[r]) for r in rows])
    committee = Committee(n_members=5, random_state=0)
    return committee.fit(vectors[rows], y, len(label_set), label_vectors), label_vectors


def same_scores(a: PoolScores, b: PoolScores) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a shared dataset folder")
    parser.add_argument("--embedder", default="static", help="embedding model name")
    parser.add_argument("--batch-size", type=int, default=64, help="embedding batch (run's)")
    parser.add_argument("--labelled", type=int, default=500, help="gold rows the committee fits")
    parser.add_argument("--num-cpus", type=int, default=None, help="the local Ray instance's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        corpus, gold_file = Path(folder) / "corpus.csv", Path(folder) / "gold.csv"
        build_corpus(args.data, args.rows, corpus, gold_file)
        rows, gold = read_corpus(corpus, gold_file)

    from agent.batch.raydata import RayEngine, start_ray

    start_s, _ = timed(lambda: start_ray(None, args.num_cpus))
    engines: dict[str, Engine] = {"local": LocalEngine(), "ray": RayEngine()}
    embed_s, vectors = {}, {}
    for name, engine in engines.items():
        embed_s[name], vectors[name] = embed_stage(engine, rows, args)
        print(f"[{name}] embedding {embed_s[name]:.1f} s", flush=True)
    committee, label_vectors = fitted_committee(vectors["local"], gold, args)
    score_s, scores = {}, {}
    for name, engine in engines.items():
        score_s[name], scores[name] = timed(
            lambda e=engine: e.score(committee, vectors["local"], label_vectors)
        )
        print(f"[{name}] scoring {score_s[name]:.1f} s", flush=True)
    same_vectors = np.array_equal(vectors["local"], vectors["ray"])
    same = same_scores(scores["local"], scores["ray"])
    print(f"\n{args.rows} rows from {args.data.name}, embedder {args.embedder}, "
          f"Ray start-up {start_s:.1f} s (not counted); identical vectors {same_vectors}, "
          f"identical scores {same}")  # fmt: skip
    print("| stage | local s | ray s | local rows/s | ray rows/s |\n|---|---:|---:|---:|---:|")
    for stage, seconds in (("embedding", embed_s), ("scoring", score_s)):
        rates = [args.rows / max(seconds[e], 1e-9) for e in engines]
        print(f"| {stage} | {seconds['local']:.1f} | {seconds['ray']:.1f} | "
              f"{rates[0]:,.0f} | {rates[1]:,.0f} |")  # fmt: skip
    local_total = embed_s["local"] + score_s["local"]
    ray_total = embed_s["ray"] + score_s["ray"]
    print(f"| both | {local_total:.1f} | {ray_total:.1f} | | |")
    print(f"ray_vs_local={ray_total / local_total:.2f}")


if __name__ == "__main__":
    main()
