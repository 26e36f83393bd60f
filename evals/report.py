"""Markdown tables from `evals.run` JSON results: one table per run, one comparison across runs.

    python -m evals.report evals/results/*.json [--baseline random --versus margin,hybrid]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _to_target(entry: dict[str, Any], n_seeds: int) -> str:
    reached = entry.get("target_reached_seeds", 0)
    if entry["human_labels_to_target"] is None:
        return f"not reached ({reached}/{n_seeds})"
    return f"{entry['human_labels_to_target']:.0f}"


def _estimate(entry: dict[str, Any]) -> str:
    est = entry.get("estimated_accuracy")
    if not est:
        return "—"
    return f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


HUMAN_ONLY = ("random", "margin", "entropy", "least-confidence", "hybrid", "coreset", "kmeans",
              "committee", "vote-entropy", "best-human-only")


def honest_limit(result: dict[str, Any]) -> tuple[str, float] | None:
    """The better of the oracle router and the best human-only system in this run: (name,
    mean human labels to target, a missed seed counted as the budget); None without either."""
    budget = float(result["config"]["budget"])
    found = [
        (name, _counted(s, budget)) for name, s in result["systems"].items()
        if name in HUMAN_ONLY or name == "oracle-router"
    ]
    return min(found, key=lambda pair: pair[1]) if found else None


def _counted(entry: dict[str, Any], budget: float) -> float:
    """Mean human labels to target over seeds, a seed that missed counted as the budget."""
    seeds = entry.get("seeds") or []
    if not seeds:
        value = entry["human_labels_to_target"]
        return budget if value is None else float(value)
    return sum(budget if d["human_labels_to_target"] is None else d["human_labels_to_target"]
               for d in seeds) / len(seeds)


def _stops(entry: dict[str, Any]) -> str:
    """Per seed, where the system stopped asking people on its own word ('—': it did not)."""
    stops = [d.get("stopped_at") for d in entry.get("seeds", [])]
    if not any(stops):
        return "—"
    return "; ".join(
        f"{s['human_labels']}: {s['corpus_accuracy']:.3f}" if s else "—" for s in stops
    )


def render_table(result: dict[str, Any]) -> str:
    """One run as a markdown table: a row per system, means over seeds (AULC ± std)."""
    cfg = result["config"]
    n_seeds = int(cfg["seeds"])
    head = (
        f"**{result['dataset']}**: pool {result['pool_size']}, test {result['test_size']}, "
        f"{result['n_labels']} labels, budget {cfg['budget']} (step {cfg['step']}, "
        f"init {cfg['init']} {cfg['init_strategy']}), target {cfg['target']}, "
        f"human error {cfg['human_error']}, {n_seeds} seeds"
        + (f", LLM {cfg['llm']}" if cfg.get("llm") else "")
    )
    lines = [
        head,
        "",
        "| system | human labels to target | vs limit | LLM calls (share of pool) "
        "| final corpus acc | test acc | AULC test (± std) | AULC corpus "
        "| estimated acc [95 % CI] | stopped itself (labels: true acc) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    limit = honest_limit(result)
    budget, pool = float(cfg["budget"]), max(int(result["pool_size"]), 1)
    for name, s in result["systems"].items():
        ratio = "—" if not limit else f"{_counted(s, budget) / max(limit[1], 1.0):.2f}x"
        lines.append(
            f"| {name} | {_to_target(s, n_seeds)} | {ratio} "
            f"| {s['llm_calls']:.0f} ({s['llm_calls'] / pool:.0%}) "
            f"| {_fmt(s['final_corpus_accuracy'])} | {_fmt(s['test_accuracy'])} "
            f"| {_fmt(s['aulc'])} ± {_fmt(s['aulc_std'])} | {_fmt(s['corpus_aulc'])} "
            f"| {_estimate(s)} | {_stops(s)} |"
        )
    if limit:
        lines += ["", f"vs limit: human labels to target (a missed seed counted as the budget) "
                  f"over the better of the oracle router and the best human-only system here: "
                  f"{limit[0]}, {limit[1]:.0f}."]
    return "\n".join(lines)


def _paired_gains(systems: dict[str, Any], name: str, baseline: str) -> list[float]:
    """Per-seed test AULC of `name` minus the baseline's in the same seed (same first labels)."""
    base = {d["seed"]: d["aulc"] for d in systems[baseline].get("seeds", [])}
    runs = systems[name].get("seeds", [])
    return [d["aulc"] - base[d["seed"]] for d in runs if d["seed"] in base]


def compare(
    results: Sequence[dict[str, Any]], baseline: str, versus: Sequence[str]
) -> tuple[str, dict[str, int]]:
    """A table of test AULC gains over `baseline` per dataset (mean over seeds, and in how many
    seeds the system won), and per system the number of datasets where its mean gain is > 0."""
    wins = {name: 0 for name in versus}
    lines = [
        f"| dataset | {baseline} AULC | "
        + " | ".join(f"{v} AULC (gain; seeds won)" for v in versus)
        + " |",
        "|---|---:|" + "---:|" * len(versus),
    ]
    for result in results:
        systems = result["systems"]
        base = systems[baseline]["aulc"]
        cells = []
        for name in versus:
            if name not in systems:
                cells.append("—")
                continue
            gain = systems[name]["aulc"] - base
            paired = _paired_gains(systems, name, baseline)
            won = sum(g > 0 for g in paired)
            wins[name] += gain > 0
            cells.append(f"{systems[name]['aulc']:.4f} ({gain:+.4f}; {won}/{len(paired)})")
        lines.append(f"| {result['dataset']} | {base:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(lines), wins


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.report", description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="JSON files written by evals.run")
    p.add_argument("--baseline", default="random")
    p.add_argument("--versus", default="margin,hybrid", help="comma-separated systems")
    args = p.parse_args(argv)
    results = [json.loads(f.read_text(encoding="utf-8")) for f in args.files]
    for result in results:
        print(render_table(result) + "\n")
    versus = [v for v in args.versus.split(",") if v]
    usable = [r for r in results if args.baseline in r["systems"]]
    wins: dict[str, int] = {}
    if usable and versus:
        table, wins = compare(usable, args.baseline, versus)
        print(table + "\n")
        for name, count in wins.items():
            print(f"{name} beats {args.baseline} on test AULC in {count}/{len(usable)} datasets")
    print(f"most_wins_vs_baseline={max(wins.values(), default=0)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
