"""Benchmark: N reviewer processes deciding through the library against one project on disk.

    python -m evals.bench_review_load [--reviewers 8] [--decisions 500] [--items N] [--keep DIR]

Builds a SQLite project in a temporary folder with `--items` items (default 1.25 x reviewers x
decisions) all in the review queue (reviews_needed 1, random priorities), then starts the
reviewer processes together (multiprocessing, spawn). Each opens the project, and `decisions`
times leases one item (`store.lease`) and records its label with
`agent.loop.record.record_human_labels`, the function every front door uses. A decision's
latency runs from just before the lease to the return of the record call.

Afterwards the project is read back: a *lost* decision was leased and recorded by a reviewer
but is not stored as that reviewer's human label (or its queue entry is not done); a *doubled*
decision is a second standing human label on one item. Both must be 0. Not part of
`make test`. Last line: `review_load_p95_ms=<value> lost=<n> doubled=<n>`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.loop.record import HumanLabel, record_human_labels
from agent.store.sqlite import Store
from agent.types import LabelSet, QueueEntry

LABELS = LabelSet(("billing", "shipping", "returns", "account_access", "technical_issue"))
WORDS = ("parcel", "refund", "card", "login", "app", "charge", "late", "broken", "password")
LEASE_SECONDS = 600.0  # longer than the run: a lease never runs out and goes to another


@dataclass
class ReviewerResult:
    """What one reviewer process did: the items it decided and each decision's latency."""

    operator: str
    decided: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    errors: list[str] = field(default_factory=list)


def build_project(folder: Path, n_items: int, seed: int) -> None:
    """A project with `n_items` short texts, every one pending review (reviews_needed 1)."""
    rng = random.Random(seed)
    rows = [
        (f"item-{i:06d}", " ".join(rng.choice(WORDS) for _ in range(12)), None)
        for i in range(n_items)
    ]
    with Store.create(folder, LABELS) as store:
        store.add_items(rows)
        keys = [item.key for batch in store.iter_items() for item in batch]
        entries = [
            QueueEntry(key, "clf_unsure", rng.random(), 1, {"best": LABELS.names[key % 5]}, 1)
            for key in keys
        ]
        store.enqueue(entries)


def reviewer(folder: str, operator: str, decisions: int, start_at: float) -> ReviewerResult:
    """One reviewer process: lease one item, decide it, `decisions` times (or until empty)."""
    result = ReviewerResult(operator)
    rng = random.Random(operator)
    with Store.open(Path(folder)) as store:
        while time.time() < start_at:  # every process starts together
            time.sleep(0.001)
        result.started = time.perf_counter()
        for _ in range(decisions):
            began = time.perf_counter()
            try:
                leased = store.lease(operator, 1, lease_seconds=LEASE_SECONDS)
                if not leased:
                    break
                label = HumanLabel(leased[0].item_key, rng.choice(LABELS.names), duration_ms=1)
                record_human_labels(store, [label], actor=operator)
            except Exception as exc:  # reported, and counted against the run
                result.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            result.latencies_ms.append((time.perf_counter() - began) * 1000.0)
            result.decided.append(leased[0].item_key)
        result.finished = time.perf_counter()
    return result


def run_reviewers(
    folder: Path, reviewers: int, decisions: int
) -> tuple[list[ReviewerResult], float]:
    """Start every reviewer at once (spawned processes); their results and the wall seconds."""
    context = mp.get_context("spawn")
    start_at = time.time() + 2.0 + 0.25 * reviewers  # time for the processes to import and open
    args = [(str(folder), f"reviewer-{i}", decisions, start_at) for i in range(reviewers)]
    with context.Pool(reviewers) as pool:
        pending = pool.starmap_async(reviewer, args)
        results = pending.get(timeout=3600)
    wall = max(r.finished for r in results) - min(r.started for r in results)
    return results, wall


def audit(folder: Path, results: list[ReviewerResult]) -> dict[str, int]:
    """Lost and doubled decisions, read back from the project after every reviewer is done."""
    with Store.open(folder) as store:
        labels = store.annotations(source="human", kind="label")
        waiting = {e.item_key for e in store.pending()}  # a decided item must not be here
    by_item = Counter(row["item_key"] for row in labels)
    stored = {(row["item_key"], row["actor"]) for row in labels}
    decided = [(key, r.operator) for r in results for key in r.decided]
    lost = sum((key, op) not in stored or key in waiting for key, op in decided)
    doubled = sum(count - 1 for count in by_item.values() if count > 1)
    leased_twice = sum(c - 1 for c in Counter(key for key, _ in decided).values() if c > 1)
    return {"lost": lost, "doubled": doubled, "leased_twice": leased_twice, "stored": len(labels)}


def report(results: list[ReviewerResult], wall: float, checks: dict[str, int]) -> dict[str, Any]:
    """Throughput, latency percentiles and the integrity counts of one run."""
    latencies = np.array([ms for r in results for ms in r.latencies_ms])
    total = int(latencies.size)
    return {
        "reviewers": len(results),
        "decisions": total,
        "errors": sum(len(r.errors) for r in results),
        "wall_s": round(wall, 3),
        "decisions_per_s": round(total / wall, 1) if wall > 0 else 0.0,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if total else float("nan"),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2) if total else float("nan"),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if total else float("nan"),
        "max_ms": round(float(latencies.max()), 2) if total else float("nan"),
        **checks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", type=int, default=8)
    parser.add_argument("--decisions", type=int, default=500, help="per reviewer")
    parser.add_argument("--items", type=int, default=None, help="default 1.25 x the decisions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="build the project here, keep it")
    args = parser.parse_args(argv)
    n_items = args.items or int(1.25 * args.reviewers * args.decisions)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_review_load_")) / "project"
    try:
        build_project(folder, n_items, args.seed)
        results, wall = run_reviewers(folder, args.reviewers, args.decisions)
        figures = report(results, wall, audit(folder, results))
    finally:
        if args.keep is None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    for error in sorted({e for r in results for e in r.errors})[:5]:
        print(f"error: {error}")
    print(" ".join(f"{k}={v}" for k, v in figures.items() if k != "p95_ms"), flush=True)
    print(f"review_load_p95_ms={figures['p95_ms']} lost={figures['lost']} "
          f"doubled={figures['doubled']}")  # fmt: skip
    bad = figures["lost"] + figures["doubled"] + figures["leased_twice"] + figures["errors"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
