"""Run the systems once per real-LLM replay file of a folder and compare them (issue 20).

    python -m evals.sweep_real --dataset ../shared/datasets/babe --setting zero-shot \
        --systems labelagent,oracle-router,margin,posterior-router --seeds 2 --budget 1500 \
        --step 50 --target 0.9 --out evals/results/sweep_babe_zero-shot.json

Every `*.csv` in `DATASET/llm/SETTING/` (or in `--replays DIR`; `--only a,b` keeps the files
named a.csv, b.csv) is one LLM: the systems that use an LLM run with `--llm replay:FILE`, the
human-only ones (`margin`, `random`, ...) once, since they ignore it. Everything runs in this
process through `evals.run`'s own functions (`make_config`, `run_systems`), on one embedding of
the dataset, seeds 0..N-1.

The markdown table has a row per LLM: its accuracy on the pool against gold (an abstain counts
as wrong), each system's mean human labels to target, then labelagent's LLM calls as a share of
the pool, its final corpus accuracy, its interval per seed and whether it covered that seed's
true final corpus accuracy, and its ratios to margin, the posterior router and the oracle
router. **A seed that never reached the target counts as the budget** (marked `*` in the
table), both in the means and in the ratios. The last line is

    worst_vs_margin=<x> worst_vs_posterior=<y> covered=<c>/<n> weak_llm_calls_share=<s>

worst_*: the largest labelagent ratio over the LLMs; covered: labelagent's seeded runs whose
interval held the truth (a run without an interval counts as not covered) out of all of them;
weak_llm_calls_share: the largest LLM-calls share of the pool among the LLMs with accuracy
below WEAK (0.6). `n/a` where a term has no runs (e.g. labelagent not among `--systems`).
The JSON at `--out` holds every system's `evals.run` summary per LLM, the table and that line.
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

from agent.errors import ConfigError, LabelAgentError
from evals.data import Dataset, load_dataset
from evals.llm_systems import ABSTAIN, LLM_SYSTEMS, llm_view
from evals.run import add_loop_arguments, make_config, run_systems
from evals.sim import SimContext
from evals.systems import get_system

DEFAULT_SYSTEMS = "labelagent,oracle-router,margin,posterior-router"
USES_LLM = {*LLM_SYSTEMS, "posterior-router", "labelagent"}
WEAK = 0.6  # LLMs below this pool accuracy count as weak (weak_llm_calls_share)
RATIOS = (("margin", "margin"), ("posterior", "posterior-router"), ("oracle", "oracle-router"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals.sweep_real",
                                description=__doc__.split("\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="a ../shared/datasets/<name> folder")
    p.add_argument("--setting", default="zero-shot", help="replays in DATASET/llm/<setting>/")
    p.add_argument("--replays", type=Path, help="any folder of replay CSVs (overrides --setting)")
    p.add_argument("--only", help="comma-separated replay names (file stems) to keep")
    p.add_argument("--systems", default=DEFAULT_SYSTEMS, help="comma-separated system names")
    p.add_argument("--seeds", type=int, default=2, help="run seeds 0..N-1 (default 2)")
    add_loop_arguments(p, budget=1500, step=50, target=0.9)
    p.add_argument("--out", type=Path, required=True, help="JSON result file")
    return p.parse_args(argv)


def replay_files(args: argparse.Namespace) -> list[Path]:
    """The replay CSVs to sweep, sorted by name; ConfigError when none is left."""
    folder = args.replays or args.dataset / "llm" / args.setting
    files = sorted(folder.glob("*.csv"))
    if args.only:
        keep = {n.strip() for n in args.only.split(",") if n.strip()}
        files = [f for f in files if f.stem in keep]
    if not files:
        raise ConfigError(f"no replay files (*.csv) to sweep in {folder}")
    return files


def llm_quality(ctx: SimContext) -> dict[str, Any]:
    """The replayed LLM on the pool: accuracy against gold (abstains wrong), abstains, and
    the share of its answers per label."""
    labels, gold = llm_view(ctx, 0).labels, ctx.data.pool.y
    names = ctx.data.label_set.names
    return {
        "accuracy": round(float(np.mean(labels == gold)), 4),
        "abstains": int(np.sum(labels == ABSTAIN)),
        "answer_shares": {n: round(float(np.mean(labels == i)), 4) for i, n in enumerate(names)},
    }


def sweep(data: Dataset, args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Human-only systems once, the LLM systems per replay file -> the result dict."""
    seeds = list(range(args.seeds))
    human_only = [n for n in names if n not in USES_LLM]
    with_llm = [n for n in names if n in USES_LLM]
    config = make_config(argparse.Namespace(**{**vars(args), "llm": None}))
    out: dict[str, Any] = {
        "dataset": data.name, "pool_size": len(data.pool), "n_labels": len(data.label_set),
        "setting": None if args.replays else args.setting, "systems": names,
        "config": {**vars(config), "seeds": args.seeds, "embedder": args.embedder},
        "human_only": {}, "llms": {},
    }
    if human_only:
        print(f"# human-only: {', '.join(human_only)}", file=sys.stderr, flush=True)
        out["human_only"] = run_systems(SimContext(data, config), human_only, seeds)
    for path in replay_files(args):
        start = time.perf_counter()
        print(f"# {path.stem}", file=sys.stderr, flush=True)
        ctx = SimContext(data, make_config(
            argparse.Namespace(**{**vars(args), "llm": f"replay:{path}"})))
        entry = {"file": str(path), **llm_quality(ctx)}
        entry["systems"] = run_systems(ctx, with_llm, seeds) if with_llm else {}
        entry["seconds"] = round(time.perf_counter() - start, 1)
        out["llms"][path.stem] = entry
    return out


def labels_to_target(summary: dict[str, Any] | None, budget: int) -> tuple[float, bool] | None:
    """Mean human labels to target over seeds, a missed seed counted as `budget`; and whether
    any seed missed. None without a summary."""
    if not summary:
        return None
    per_seed = [d["human_labels_to_target"] for d in summary["seeds"]]
    counted = [budget if h is None else h for h in per_seed]
    return float(np.mean(counted)), any(h is None for h in per_seed)


def system_of(result: dict[str, Any], llm: str, name: str) -> dict[str, Any] | None:
    """One system's summary for one LLM (human-only systems: their single run)."""
    found: dict[str, Any] | None = result["llms"][llm]["systems"].get(name)
    return found or result["human_only"].get(name)


def ratio(result: dict[str, Any], llm: str, other: str) -> float | None:
    """labelagent's mean human labels to target over `other`'s (missed seeds: the budget)."""
    budget = int(result["config"]["budget"])
    la = labels_to_target(system_of(result, llm, "labelagent"), budget)
    base = labels_to_target(system_of(result, llm, other), budget)
    if la is None or base is None:
        return None
    return la[0] / max(base[0], 1.0)


def _cell_to_target(result: dict[str, Any], llm: str, name: str) -> str:
    got = labels_to_target(system_of(result, llm, name), int(result["config"]["budget"]))
    return "—" if got is None else f"{got[0]:,.0f}{'*' if got[1] else ''}"


def _intervals(la: dict[str, Any]) -> str:
    """Per seed: the interval and whether it covered that seed's final corpus accuracy."""
    cells = []
    for d in la["seeds"]:
        est = d.get("estimated_accuracy")
        if not est:
            cells.append("none")
            continue
        mark = "covered" if d.get("estimate_covers") else f"missed {d['final_corpus_accuracy']:.3f}"
        cells.append(f"[{est['low']:.3f}, {est['high']:.3f}] {mark}")
    return "; ".join(cells)


def table_row(result: dict[str, Any], llm: str) -> str:
    """One LLM's markdown row."""
    entry, pool = result["llms"][llm], result["pool_size"]
    abstains = f", {entry['abstains']} abstains" if entry["abstains"] else ""
    cells = [f"{llm} ({entry['accuracy']:.3f}{abstains})"]
    cells += [_cell_to_target(result, llm, name) for name in result["systems"]]
    la = system_of(result, llm, "labelagent")
    if la:
        cells += [f"{la['llm_calls'] / pool:.0%}", f"{la['final_corpus_accuracy']:.4f}",
                  _intervals(la)]
    else:
        cells += ["—"] * 3
    for _, other in RATIOS:
        r = ratio(result, llm, other)
        cells.append("—" if r is None else f"{r:.2f}x")
    return "| " + " | ".join(cells) + " |"


def render_table(result: dict[str, Any]) -> str:
    """The sweep as a markdown table, a row per LLM, strongest first."""
    cfg = result["config"]
    head = (f"**{result['dataset']}** {result['setting'] or 'replays'}: pool {result['pool_size']},"
            f" budget {cfg['budget']} (step {cfg['step']}), target {cfg['target']}, "
            f"{cfg['seeds']} seeds; human labels to target, mean over seeds (* a seed missed: "
            "counted as the budget)")
    cols = [*result["systems"], "labelagent LLM calls / pool", "labelagent final corpus acc",
            "labelagent interval per seed", *(f"labelagent / {n}" for n, _ in RATIOS)]
    lines = [head, "", "| LLM (pool accuracy) | " + " | ".join(cols) + " |",
             "|---|" + "---:|" * (len(result["systems"]) + 2) + "---|" + "---:|" * len(RATIOS)]
    order = sorted(result["llms"], key=lambda n: -result["llms"][n]["accuracy"])
    lines += [table_row(result, llm) for llm in order]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def last_line(result: dict[str, Any]) -> str:
    """`worst_vs_margin=<x> worst_vs_posterior=<y> covered=<c>/<n> weak_llm_calls_share=<s>`."""
    llms = result["llms"]
    worst = {}
    for key, other in RATIOS[:2]:
        ratios = [r for r in (ratio(result, llm, other) for llm in llms) if r is not None]
        worst[key] = max(ratios) if ratios else None
    la = {llm: system_of(result, llm, "labelagent") for llm in llms}
    runs = [d for s in la.values() if s for d in s["seeds"]]
    covered = sum(bool(d.get("estimate_covers")) for d in runs)
    shares = [s["llm_calls"] / result["pool_size"] for llm, s in la.items()
              if s and llms[llm]["accuracy"] < WEAK]
    weak = max(shares, default=None)
    return (f"worst_vs_margin={_fmt(worst['margin'])} "
            f"worst_vs_posterior={_fmt(worst['posterior'])} "
            f"covered={covered}/{len(runs)} weak_llm_calls_share={_fmt(weak)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    start = time.perf_counter()
    try:
        for name in names:
            get_system(name)  # unknown names fail before any work
        replay_files(args)
        data = load_dataset(args.dataset, embedder=args.embedder, cache_dir=args.cache_dir,
                            progress=True)
        with threadpool_limits(limits=args.threads):
            result = sweep(data, args, names)
    except (LabelAgentError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["table"], result["last_line"] = render_table(result), last_line(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(result["table"])
    print(result["last_line"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
