"""Simulate labelling systems on a labelled dataset and write their label-cost curves to JSON.

    python -m evals.run --dataset ../shared/datasets/trec --systems random,margin --seeds 3 \
        --budget 500 --step 25 --out evals/out/trec.json --plot evals/out/trec.png

The train split is the pool with hidden gold; the test split measures the classifier. Each
system runs once per seed (seeds 0..N-1); the top level of each system's entry holds means
over seeds, `seeds` the per-seed detail. Prints the table; the last line is `best_aulc=<x>`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from agent.errors import LabelAgentError
from evals.data import CACHE_DIR, load_dataset
from evals.metrics import aulc, mean_curve, mean_or_none
from evals.report import render_table
from evals.sim import SimConfig, SimContext, SystemRun
from evals.systems import get_system, resolve_llm_spec


def add_loop_arguments(p: argparse.ArgumentParser, budget: int, step: int, target: float) -> None:
    """The run settings every simulation command shares (`make_config` reads them)."""
    p.add_argument("--budget", type=int, default=budget, help="human labels per system")
    p.add_argument("--step", type=int, default=step, help="human labels per round")
    p.add_argument("--init", type=int, help="first labels, same for every system (default step)")
    p.add_argument("--init-strategy", choices=("random", "zeroshot"), default="random")
    p.add_argument("--target", type=float, default=target, help="corpus accuracy to reach")
    p.add_argument("--human-error", type=float, default=0.0, help="simulated human error rate")
    p.add_argument("--members", type=int, default=5, help="bootstrap members (committee systems)")
    p.add_argument("--no-prior", action="store_true", help="no zero-shot member in the classifier")
    p.add_argument("--own-word", action="store_true",
                   help="labelagent gets the target and may stop asking people itself")
    p.add_argument("--estimator", choices=["prediction-powered", "stratified-exact"],
                   default="prediction-powered", help="labelagent's accuracy estimator")
    p.add_argument("--embedder", default="all-MiniLM-L6-v2", help="embedding model name")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="embedding cache folder")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (1: best on shared CPUs)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals.run", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="a ../shared/datasets/<name> folder")
    p.add_argument("--systems", required=True, help="comma-separated names (evals/systems.py)")
    p.add_argument("--seeds", type=int, default=3, help="run seeds 0..N-1 (default 3)")
    p.add_argument("--pool-size", type=int, help="seeded subsample of the train split")
    p.add_argument("--test-size", type=int, help="seeded subsample of the test split")
    p.add_argument("--test-split", default="test", help="test CSV name without .csv")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of both subsamples")
    add_loop_arguments(p, budget=500, step=25, target=0.95)
    p.add_argument("--llm", help="annotator: simulated (errors follow content, the dataset's "
                   "level) | content:acc=X[,auroc=,abstain=,bias=,favour=,never=] | "
                   "simulated-flat | simulated:acc=X[,abstain=Y] | replay:PATH")
    p.add_argument("--out", type=Path, required=True, help="JSON result file")
    p.add_argument("--plot", type=Path, help="PNG of the curves")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> SimConfig:
    """Run settings from the command line; a bare `--llm simulated` gets the dataset's level."""
    return SimConfig(
        budget=args.budget,
        step=args.step,
        init=args.step if args.init is None else args.init,
        init_strategy=args.init_strategy,
        target=args.target,
        human_error=args.human_error,
        n_members=args.members,
        use_prior=not args.no_prior,
        llm=resolve_llm_spec(args.llm, args.dataset.name),
        own_word=args.own_word,
        estimator=args.estimator,
    )


def summarise(runs: Sequence[SystemRun], seeds: Sequence[int], hi: float) -> dict[str, Any]:
    """Means over seeds of one system's runs, with the per-seed detail under `seeds`."""
    detail = [_seed_entry(run, seed, hi) for run, seed in zip(runs, seeds)]
    aulcs = [d["aulc"] for d in detail]
    out: dict[str, Any] = {
        "human_labels_to_target": mean_or_none([d["human_labels_to_target"] for d in detail]),
        "target_reached_seeds": sum(d["human_labels_to_target"] is not None for d in detail),
        "llm_calls": float(np.mean([d["llm_calls"] for d in detail])),
        "final_corpus_accuracy": _mean(d["final_corpus_accuracy"] for d in detail),
        "test_accuracy": _mean(d["test_accuracy"] for d in detail),
        "aulc": _mean(aulcs),
        "aulc_std": round(float(np.std(aulcs)), 5),
        "corpus_aulc": _mean(d["corpus_aulc"] for d in detail),
        "curve": mean_curve([run.curve for run in runs]),
    }
    estimates = [run.estimated_accuracy for run in runs]
    if estimates and all(e is not None for e in estimates):
        keys = ("value", "low", "high")
        out["estimated_accuracy"] = {k: _mean(e[k] for e in estimates if e) for k in keys}
        out["estimate_covers_seeds"] = sum(d["estimate_covers"] for d in detail)
    out["seeds"] = detail
    return out


def _mean(values: Any) -> float:
    return round(float(np.mean(list(values))), 5)


def _seed_entry(run: SystemRun, seed: int, hi: float) -> dict[str, Any]:
    h = [p[0] for p in run.curve]
    last = run.curve[-1]
    entry: dict[str, Any] = {
        "seed": seed,
        "human_labels_to_target": run.human_labels_to_target,
        "llm_calls": run.llm_calls,
        "final_corpus_accuracy": last[1],
        "test_accuracy": last[2],
        "aulc": round(aulc(h, [p[2] for p in run.curve], 0.0, hi), 5),
        "corpus_aulc": round(aulc(h, [p[1] for p in run.curve], 0.0, hi), 5),
        "curve": [list(p) for p in run.curve],
    }
    if run.stopped_at is not None:
        entry["stopped_at"] = {"human_labels": run.stopped_at[0],
                               "corpus_accuracy": run.stopped_at[1]}
    if run.estimated_accuracy is not None:
        est = run.estimated_accuracy
        entry["estimated_accuracy"] = est
        entry["estimate_covers"] = bool(est["low"] <= last[1] <= est["high"])
    return entry


def run_systems(ctx: SimContext, names: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Every system over every seed -> {name: summary}; progress lines go to stderr."""
    hi = float(min(ctx.config.budget, ctx.n_pool))
    systems = {name: get_system(name) for name in names}  # unknown names fail before any work
    results: dict[str, Any] = {}
    for name, system in systems.items():
        runs, start = [], time.perf_counter()
        for seed in seeds:
            runs.append(system(ctx, seed))
            last = runs[-1].curve[-1]
            print(f"  {name} seed {seed}: h={last[0]} corpus={last[1]:.4f} test={last[2]:.4f}",
                  file=sys.stderr, flush=True)
        results[name] = summarise(runs, seeds, hi)
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    try:
        config = make_config(args)
        data = load_dataset(
            args.dataset, pool_size=args.pool_size, test_size=args.test_size,
            sample_seed=args.sample_seed, test_split=args.test_split, embedder=args.embedder,
            cache_dir=args.cache_dir, progress=True,
        )
        ctx = SimContext(data, config)
        with threadpool_limits(limits=args.threads):
            systems = run_systems(ctx, names, list(range(args.seeds)))
    except (LabelAgentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {
        "dataset": data.name,
        "pool_size": ctx.n_pool,
        "test_size": len(data.test),
        "n_labels": ctx.n_classes,
        "config": {**vars(config), "seeds": args.seeds, "embedder": args.embedder,
                   "test_split": args.test_split, "sample_seed": args.sample_seed},
        "systems": systems,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        from evals.plots import plot_result

        plot_result(result, args.plot)
    print(render_table(result))
    best = max(s["aulc"] for s in systems.values())
    print(f"best_aulc={best:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
