"""Benchmark: every query strategy and the committee on synthetic pools of 10k, 100k and 1M rows.

    python -m evals.bench_select [--sizes 10000,100000,1000000] [--n 100] [--threads 1]

Pools are clustered, L2-normalised float32 vectors (d = 384 like all-MiniLM-L6-v2); the
probabilities and member probabilities come from a Committee fitted on 2,000 synthetic labels,
so the committee's own fit and scoring are timed on the way. Memory per call is reported two
ways: the peak resident set over the RSS before the call (VmHWM reset through
/proc/self/clear_refs; counts native allocations, but not memory the allocator already held),
and tracemalloc's peak (numpy and Python allocations only, from a second run). The last line
is `select_1m_max_seconds=<slowest strategy at 1,000,000 rows>`.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from agent.learn.committee import Committee
from agent.learn.strategies import STRATEGIES, StrategyFn
from agent.types import Selection

DIM, N_CLUSTERS, N_CLASSES, N_MEMBERS, N_LABELLED = 384, 64, 20, 5, 2_000


@dataclass
class Pool:
    """Arrays a selection round sees: embeddings (N, d), probs (N, C), member probs (K, N, C)."""

    embeddings: np.ndarray
    probs: np.ndarray
    ctx: dict[str, Any]
    candidates: np.ndarray


def clustered_unit_vectors(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors around N_CLUSTERS random centres -> X (n, DIM) float32, cluster (n,)."""
    centres = rng.standard_normal((N_CLUSTERS, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(0, N_CLUSTERS, n)
    X = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        rows = slice(start, start + 100_000)
        X[rows] = centres[cluster[rows]]
        X[rows] += 0.06 * rng.standard_normal(X[rows].shape, dtype=np.float32)
        X[rows] /= np.linalg.norm(X[rows], axis=1, keepdims=True)
    return X, cluster


def rss_mb(field: str) -> float:
    """VmRSS or VmHWM of this process in MB, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(call: Callable[[], object]) -> tuple[float, float, float]:
    """(seconds, peak RSS over the RSS before, tracemalloc peak) in s, MB, MB for `call`."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS
    before = rss_mb("VmRSS")
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    rss_peak = rss_mb("VmHWM") - before
    tracemalloc.start()
    call()
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, rss_peak, traced_peak


def build_pool(size: int, seed: int) -> tuple[Pool, dict[str, float]]:
    """A synthetic pool of `size` rows plus the committee's fit and scoring times (s)."""
    rng = np.random.default_rng(seed)
    X, cluster = clustered_unit_vectors(size, rng)
    labelled = rng.choice(size, N_LABELLED, replace=False)
    y = cluster[labelled] % N_CLASSES
    label_embeddings = X[rng.choice(np.flatnonzero(cluster < N_CLASSES), N_CLASSES)]
    times = {}
    start = time.perf_counter()
    model = Committee(n_members=N_MEMBERS, random_state=seed).fit(X[labelled], y, N_CLASSES)
    times["fit"] = time.perf_counter() - start
    start = time.perf_counter()
    probs = model.predict_proba(X)
    times["predict_proba"] = time.perf_counter() - start
    start = time.perf_counter()
    members = model.member_proba(X)
    times["member_proba"] = time.perf_counter() - start
    ctx = {"member_probs": members, "labelled": labelled, "label_embeddings": label_embeddings}
    candidates = np.setdiff1d(np.arange(size), labelled)
    return Pool(X, probs, ctx, candidates), times


def bench(sizes: list[int], n: int, seed: int) -> dict[int, dict[str, tuple[float, float, float]]]:
    """Times and memory of every strategy at every pool size; prints the committee's times."""
    results: dict[int, dict[str, tuple[float, float, float]]] = {}
    for size in sizes:
        pool, times = build_pool(size, seed)
        print(
            f"pool {size:>9,}: Committee.fit({N_LABELLED} labels, K={N_MEMBERS}) "
            f"{times['fit']:.2f}s  predict_proba {times['predict_proba']:.2f}s"
            f"  member_proba {times['member_proba']:.2f}s",
            flush=True,
        )
        results[size] = {
            name: measure(functools.partial(select, strategy, pool, n, seed))
            for name, strategy in STRATEGIES.items()
        }
    return results


def select(strategy: StrategyFn, pool: Pool, n: int, seed: int) -> Selection:
    """One selection of n items from the pool's candidates."""
    rng = np.random.default_rng(seed)
    return strategy(pool.probs, pool.embeddings, pool.candidates, n, rng, **pool.ctx)


def print_table(results: dict[int, dict[str, tuple[float, float, float]]]) -> None:
    """One row per strategy: seconds at each size, the top/previous ratio, memory at the top."""
    sizes = sorted(results)
    top = sizes[-1]
    head = "".join(f"{f'{s:,} s':>13}" for s in sizes)
    ratio_name = f"{top // sizes[-2]}x ratio" if len(sizes) > 1 else "ratio"
    print(f"\n{'strategy':<17}{head}{ratio_name:>11}{'+RSS MB':>10}{'traced MB':>11}")
    for name in STRATEGIES:
        cells = "".join(f"{results[s][name][0]:>13.3f}" for s in sizes)
        ratio = results[top][name][0] / results[sizes[-2]][name][0] if len(sizes) > 1 else 1.0
        _, rss, traced = results[top][name]
        print(f"{name:<17}{cells}{ratio:>11.1f}{rss:>10.0f}{traced:>11.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(memory columns at {top:,} rows; whole process peak RSS {peak:,.0f} MB incl. the pool)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--n", type=int, default=100, help="items chosen per call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="BLAS/OpenMP threads (0: the libraries' default)"
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    load = os.getloadavg()[0]
    threads = args.threads or "default"
    print(
        f"{os.cpu_count()} cores, threads {threads}, load average {load:.1f} at start", flush=True
    )
    with threadpool_limits(limits=args.threads or None):
        results = bench(sizes, args.n, args.seed)
    print_table(results)
    print(f"load average {os.getloadavg()[0]:.1f} at end (other processes share these cores)")
    top = sizes[-1]
    key = "1m" if top == 1_000_000 else str(top)
    print(f"select_{key}_max_seconds={max(r[0] for r in results[top].values()):.2f}")


if __name__ == "__main__":
    main()
