"""A small end-to-end evaluation for CI: random vs margin on 1,000 TREC questions, real MiniLM.

    python -m evals.smoke [--datasets ../shared/datasets]

Embeds at most 1,500 texts (cached under evals/.cache/), runs two systems for two seeds and
checks that the JSON has the documented shape, that the numbers are sane, and that margin is
not worse than random beyond a tolerance. Last line: `smoke_ok=1` (or an AssertionError).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals import run
from evals.data import CACHE_DIR

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
KEYS = {"human_labels_to_target", "llm_calls", "final_corpus_accuracy", "test_accuracy", "aulc",
        "curve"}
TOLERANCE = 0.03  # margin's test AULC may trail random's by this much on 2 seeds
MIN_TEST_ACCURACY = 0.6  # 200 labels of TREC with MiniLM give about 0.75


def check(result: dict[str, Any], budget: int, step: int) -> None:
    """Assert the shape and sanity of one `evals.run` result; AssertionError says what failed."""
    assert {"dataset", "pool_size", "systems"} <= set(result), sorted(result)
    grid = [0, *range(step, budget + 1, step)]
    for name, entry in result["systems"].items():
        assert set(entry) >= KEYS, f"{name}: missing {KEYS - set(entry)}"
        assert [p[0] for p in entry["curve"]] == grid, f"{name}: curve grid {entry['curve']}"
        values = [v for p in entry["curve"] for v in p[1:]]
        assert all(0.0 <= v <= 1.0 for v in values), f"{name}: accuracy outside [0, 1]"
        assert 0.0 < entry["aulc"] <= 1.0 and entry["llm_calls"] == 0, name
        assert entry["test_accuracy"] >= MIN_TEST_ACCURACY, f"{name}: {entry['test_accuracy']}"
    margin, random = result["systems"]["margin"]["aulc"], result["systems"]["random"]["aulc"]
    assert margin >= random - TOLERANCE, f"margin AULC {margin:.4f} < random {random:.4f} - tol"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.smoke", description=__doc__.split("\n")[0])
    p.add_argument("--datasets", type=Path, default=DATASETS, help="the shared datasets folder")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="embedding cache folder")
    args = p.parse_args(argv)
    budget, step, start = 200, 25, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "smoke.json"
        code = run.main([
            "--dataset", str(args.datasets / "trec"), "--systems", "random,margin",
            "--seeds", "2", "--pool-size", "1000", "--budget", str(budget), "--step", str(step),
            "--cache-dir", str(args.cache_dir), "--out", str(out),
        ])
        assert code == 0, f"evals.run exited with {code}"
        result = json.loads(out.read_text(encoding="utf-8"))
    check(result, budget, step)
    s = result["systems"]
    print(f"smoke: trec pool {result['pool_size']}, margin AULC {s['margin']['aulc']:.4f}, "
          f"random AULC {s['random']['aulc']:.4f}, {time.perf_counter() - start:.1f}s")
    print("smoke_ok=1")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
