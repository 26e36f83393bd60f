"""Coverage study of the corpus-accuracy estimators (issue 17): are the intervals honest, and
how many audited items does each need for a given width?

    python -m evals.coverage --dataset ../shared/datasets/ag_news --states 20 --draws 5 \
        --audits 300 --out evals/results/coverage_ag_news.json

A labelling state per seed comes from the posterior router's own machinery (the simulated LLM
labels the pool, `--labels` people answer the first random labels and then the least sure
items, the classifier and the LLM give every other item a label and P(wrong)). The truth is
that state's corpus accuracy against gold. Each state is audited `--draws` times, each
estimator on its own draw of `--audits` items, so there are states x draws runs:

- `stratified-exact`: today's estimator: people's labels taken as right, the machine stratum
  measured on a uniform audit with an exact (Clopper-Pearson) interval;
- `wilson`: a uniform audit of the whole corpus, Wilson interval;
- `ppi`: prediction-powered (PPI++) over the machine stratum, uniform audit;
- `ppi-active`: the same with draws weighted toward the least sure items (inverse-probability
  weights keep it unbiased): the product's default.

Per estimator: coverage over the runs, mean width in points, and the audits that the mean
width needs to fall to 3 and to 2 points (over a grid of audit sizes, `n/a` beyond it). Of
the predictor: how well its P(right) ranks right above wrong (AUC) and the share of the
outcomes' variance it explains at its best weight, the most a prediction-powered interval can
gain from it (the width scales with the square root of what is left). The
last line is the default estimator's `coverage=<fraction> mean_width=<points>
audits_for_3pts=<n>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from agent.routing.accuracy import Stratum, estimate_accuracy
from agent.routing.bounds import proportion_interval
from agent.routing.ppi import active_draw_probabilities, ppi_accuracy
from evals.data import CACHE_DIR, load_dataset
from evals.llm_systems import llm_view
from evals.posterior_router import llm_accuracy, next_batch, round_state
from evals.sim import SimConfig, SimContext, human_answers, initial_labels
from evals.systems import resolve_llm_spec

DEFAULT = "ppi-active"
GRID = (50, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400, 3200)


class State:
    """One labelling state: which items people labelled, each item's handed-over label's
    correctness (N,) and the predictor's P(right) (N,)."""

    def __init__(self, ctx: SimContext, seed: int, labels: int) -> None:
        view, answers = llm_view(ctx, seed), human_answers(ctx, seed)
        first = initial_labels(ctx, seed)
        a = llm_accuracy(view, first, answers)
        _, doubt, _ = round_state(ctx, seed, view, first, a)
        more = next_batch(doubt, first, max(0, labels - first.size), seed)
        labelled = np.concatenate([first, more])
        corpus, doubt, _ = round_state(ctx, seed, view, labelled, a)
        self.human = np.zeros(ctx.n_pool, dtype=bool)
        self.human[labelled] = True
        self.right = corpus == ctx.data.pool.y
        self.p_right = 1.0 - doubt
        self.machine = np.flatnonzero(~self.human)

    @property
    def truth(self) -> float:
        return float(self.right.mean())


Estimator = Callable[[State, int, np.random.Generator, float], tuple[float, float]]


Interval = tuple[float, float]


def stratified_exact(s: State, n: int, rng: np.random.Generator, level: float) -> Interval:
    drawn = rng.choice(s.machine, size=n, replace=True)
    strata = {"human": Stratum(int(s.human.sum()), assumed=1.0),
              "machine": Stratum(s.machine.size, n, int(s.right[drawn].sum()))}
    est = estimate_accuracy(strata, level=level)
    return est.low, est.high


def wilson(s: State, n: int, rng: np.random.Generator, level: float) -> tuple[float, float]:
    drawn = rng.choice(s.right.size, size=n, replace=True)
    low, high = proportion_interval(int(s.right[drawn].sum()), n, level, "wilson")
    return float(low), float(high)


def _ppi(s: State, n: int, rng: np.random.Generator, level: float, active: bool) -> tuple[
    float, float
]:
    f = s.p_right[s.machine]
    q = active_draw_probabilities(f) if active else np.full(f.size, 1.0 / f.size)
    drawn = rng.choice(f.size, size=n, replace=True, p=q)
    est = ppi_accuracy(s.right[s.machine][drawn].astype(float), f[drawn], f, q[drawn], level)
    share, human = s.machine.size / s.right.size, s.human.mean()
    return human + share * est.low, human + share * est.high


ESTIMATORS: dict[str, Estimator] = {
    "stratified-exact": stratified_exact,
    "wilson": wilson,
    "ppi": lambda s, n, rng, level: _ppi(s, n, rng, level, active=False),
    "ppi-active": lambda s, n, rng, level: _ppi(s, n, rng, level, active=True),
}


def predictor_quality(states: Sequence[State]) -> dict[str, float]:
    """Mean over the states of the predictor's AUC on the machine labels and the share of
    their right/wrong variance that the best multiple of it explains, 1 - min_lam
    Var(c - lam f) / Var(c)."""
    aucs, explained = [], []
    for s in states:
        right, f = s.right[s.machine].astype(float), s.p_right[s.machine]
        if right.min() == right.max() or np.ptp(f) == 0:
            continue
        aucs.append(roc_auc_score(right, f))
        explained.append(np.corrcoef(right, f)[0, 1] ** 2)
    return {"auc": round(float(np.mean(aucs)), 3) if aucs else float("nan"),
            "variance_explained": round(float(np.mean(explained)), 3) if explained else 0.0}


def study(states: Sequence[State], draws: int, audits: int, level: float) -> dict[str, Any]:
    """Per estimator: coverage and mean width at `audits`, and the audits for 3 and 2 points."""
    out: dict[str, Any] = {}
    for name, estimator in ESTIMATORS.items():
        hits, widths = 0, []
        for i, s in enumerate(states):
            rng = np.random.default_rng([i, 99])
            for _ in range(draws):
                low, high = estimator(s, audits, rng, level)
                hits += low <= s.truth <= high
                widths.append(high - low)
        by_size = {n: _mean_width(estimator, states, n, level) for n in GRID}
        out[name] = {
            "coverage": round(hits / (len(states) * draws), 4),
            "mean_width_points": round(100 * float(np.mean(widths)), 2),
            "audits_for_3pts": next((n for n, w in by_size.items() if w <= 0.03), None),
            "audits_for_2pts": next((n for n, w in by_size.items() if w <= 0.02), None),
            "width_by_audits": {n: round(100 * w, 2) for n, w in by_size.items()},
        }
    return out


def _mean_width(estimator: Estimator, states: Sequence[State], n: int, level: float) -> float:
    rng = np.random.default_rng([n, 98])
    return float(np.mean([np.subtract(*estimator(s, n, rng, level)[::-1]) for s in states]))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals.coverage", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="a ../shared/datasets/<name> folder")
    p.add_argument("--pool-size", type=int, help="seeded subsample of the train split")
    p.add_argument("--llm", default="simulated", help="annotator spec (default: content-aware)")
    p.add_argument("--labels", type=int, default=200, help="human labels before the audit")
    p.add_argument("--states", type=int, default=20, help="labelling states (seeds)")
    p.add_argument("--draws", type=int, default=5, help="audit draws per state")
    p.add_argument("--audits", type=int, default=300, help="audited items per draw")
    p.add_argument("--level", type=float, default=0.95, help="confidence level")
    p.add_argument("--embedder", default="all-MiniLM-L6-v2", help="embedding model name")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="embedding cache folder")
    p.add_argument("--out", type=Path, required=True, help="JSON result file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_dataset(args.dataset, pool_size=args.pool_size, embedder=args.embedder,
                        cache_dir=args.cache_dir, progress=True)
    llm = resolve_llm_spec(args.llm, args.dataset.name)
    ctx = SimContext(data, SimConfig(budget=args.labels, step=50, init=50, llm=llm))
    with threadpool_limits(limits=1):
        states = [State(ctx, seed, args.labels) for seed in range(args.states)]
    result = {"dataset": data.name, "pool_size": len(data.pool), "llm": llm,
              "labels": args.labels, "runs": args.states * args.draws, "audits": args.audits,
              "level": args.level, "true_accuracy": [round(s.truth, 4) for s in states],
              "predictor": predictor_quality(states),
              "estimators": study(states, args.draws, args.audits, args.level)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"**{data.name}**: pool {len(data.pool)}, LLM {llm}, {args.labels} human labels, "
          f"{result['runs']} runs, {args.audits} audits each")
    print("| estimator | coverage | mean width (points) | audits for 3 points | for 2 points |")
    print("|---|---:|---:|---:|---:|")
    for name, e in result["estimators"].items():
        print(f"| {name} | {e['coverage']:.2f} | {e['mean_width_points']:.2f} "
              f"| {e['audits_for_3pts'] or 'n/a'} | {e['audits_for_2pts'] or 'n/a'} |")
    q = result["predictor"]
    print(f"predictor: AUC {q['auc']}, explains {q['variance_explained']:.0%} of the "
          "right/wrong variance")
    d = result["estimators"][DEFAULT]
    print(f"coverage={d['coverage']} mean_width={d['mean_width_points']} "
          f"audits_for_3pts={d['audits_for_3pts'] or 'n/a'}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
