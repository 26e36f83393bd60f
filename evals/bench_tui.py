"""Benchmark: keypress to next card painted in the review TUI, on a 100,000-item project.

    python -m evals.bench_tui [--items 100000] [--decisions 300] [--dataset DIR] [--keep DIR]

Builds a project in a temporary folder from Banking77 (texts repeated under unique ids, 77
labels) with every item in the review queue and a simulated LLM + classifier suggestion, then
drives the real ReviewApp with Pilot at 100x32: Enter, 1, 2, x, s and u in a fixed mix, after
3 warm-up keys (shown apart: the very first key pays for Textual's lazy set-up). Each
figure runs from just before the key is sent until the app reports the next card painted, and
the paint includes turning the screen update into terminal bytes (headless apps skip that
step, so the benchmark app does it on purpose). Last line: `review_p95_ms=<value>`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from textual import events

from agent.config import ProjectConfig
from agent.store.sqlite import Store
from agent.tui.app import ReviewApp
from agent.types import LabelSet, QueueEntry

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77"
WARMUP = 3
KEY_MIX = ["enter", "1", "enter", "2", "enter", "1", "x", "enter", "s", "enter", "u", "enter"]
REASONS = ["audit", "clf_unsure", "committee_split"]


def read_dataset(folder: Path) -> tuple[list[str], list[str], LabelSet]:
    """Texts (n,), gold labels (n,) and the label set of a `text,label` dataset folder."""
    with (folder / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = LabelSet.from_json(json.loads((folder / "labels.json").read_text(encoding="utf-8")))
    return [r["text"] for r in rows], [r["label"] for r in rows], labels


def simulated_entry(
    key: int, gold: str, names: tuple[str, ...], rng: np.random.Generator
) -> QueueEntry:
    """A queue entry like the session writes: LLM right 75% of the time, a noisy classifier."""
    llm_label = gold if rng.random() < 0.75 else str(rng.choice(names))
    confidence = float(rng.beta(5, 2))
    others = [str(n) for n in rng.choice(names, 3, replace=False) if n != gold][:2]
    top = [gold, *others] if rng.random() < 0.6 else [*others, gold]
    probs = np.sort(rng.dirichlet([4.0, 2.0, 1.0, 3.0]))[::-1][:3]
    classifier = [[name, round(float(p), 3)] for name, p in zip(top, probs)]
    best = llm_label if confidence >= float(probs[0]) else top[0]
    p_wrong = round(1.0 - max(confidence, float(probs[0])) * 0.9, 3)
    if llm_label != top[0]:
        reason = "disagree"
    elif confidence < 0.7:
        reason = "llm_unsure"
    else:
        reason = str(rng.choice(REASONS))
    suggestion: dict[str, Any] = {
        "llm": {"label": llm_label, "confidence": round(confidence, 3), "method": "simulated",
                "rationale": f"The customer's message is about {llm_label.replace('_', ' ')}."},
        "classifier": classifier, "best": best, "p_wrong": p_wrong,
        "detail": f"LLM says {llm_label} ({confidence:.2f}), classifier says {top[0]} "
                  f"({probs[0]:.2f})",
    }
    return QueueEntry(key, reason, p_wrong + float(rng.random()) * 1e-3, 1, suggestion)


def build_project(folder: Path, n_items: int, dataset: Path = DATASET, seed: int = 0) -> Path:
    """A project of n_items Banking77 texts (repeated, unique ids), all queued with suggestions."""
    texts, golds, labels = read_dataset(dataset)
    rng = np.random.default_rng(seed)
    store = Store.create(folder, labels)
    store.add_items(
        (f"b77-{i:07d}", texts[i % len(texts)], None) for i in range(n_items)
    )
    entries = [
        simulated_entry(key, golds[(key - 1) % len(golds)], labels.names, rng)
        for key in range(1, n_items + 1)
    ]
    store.enqueue(entries)
    store.close()
    ProjectConfig.model_validate({}).save(folder)
    return folder


class EncodingReviewApp(ReviewApp):
    """ReviewApp that, headless, still encodes every screen update as a terminal would get it."""

    bytes_out = 0

    def _display(self, screen: Any, renderable: Any) -> None:  # private Textual hook, bench only
        super()._display(screen, renderable)
        encode = getattr(renderable, "render_segments", None)
        if encode is not None:
            self.bytes_out += len(encode(self.console))


def send_key(app: ReviewApp, key: str) -> None:
    """Hand a key to the app's driver as a terminal would.

    `Pilot.press` does the same and then sleeps in 20 ms steps until the process is idle,
    which would time the test harness, not the app.
    """
    event = events.Key(key, "\r" if key == "enter" else key)
    event.set_sender(app)
    assert app._driver is not None
    app._driver.send_message(event)


async def drive(
    folder: Path, decisions: int, size: tuple[int, int] = (100, 32)
) -> dict[str, list[float]]:
    """Press keys from KEY_MIX `decisions` times; per key: wall ms from key sent to next card
    painted, the app's own ms from action to painted, and the CPU ms spent (load-independent).
    """
    store = Store.open(folder)
    app = EncodingReviewApp(store, ProjectConfig.load(folder), "bench")
    latencies: list[float] = []
    cpu_ms: list[float] = []  # CPU time of this process (all threads) over the same span
    first: list[float] = []  # warm-up keys: Textual's first key dispatch costs a few 100 ms
    async with app.run_test(size=size) as pilot:
        await asyncio.wait_for(app.painted.wait(), 30)
        for i in range(-WARMUP, decisions):
            app.painted.clear()
            started, cpu = time.perf_counter(), time.process_time()
            send_key(app, KEY_MIX[i % len(KEY_MIX)])
            await asyncio.wait_for(app.painted.wait(), 30)
            if i >= 0:
                latencies.append((time.perf_counter() - started) * 1000)
                cpu_ms.append((time.process_time() - cpu) * 1000)
            else:
                first.append((time.perf_counter() - started) * 1000)
            await pilot.pause(0.02)  # a human's next key is far later; let timers run
        inside = list(app.latencies_ms)[-decisions:]
        await pilot.press("q")
    store.close()
    return {"key sent -> next card painted": latencies, "app: action -> painted": inside,
            "CPU time, key sent -> painted": cpu_ms, "warm-up keys (not counted)": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--keep", type=Path, help="build the project here and keep it")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "project"
        started = time.perf_counter()
        build_project(folder, args.items, args.dataset)
        built = time.perf_counter() - started
        print(f"built {args.items:,} items, all queued, in {built:.1f} s: {folder}")
        if args.build_only:
            return
        load_before = os.getloadavg()[0]
        figures = asyncio.run(drive(folder, args.decisions))
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"on {os.cpu_count()} cores")
    print(f"{'measure':<34} {'keys':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, values in figures.items():
        p50, p95, worst = np.percentile(values, [50, 95, 100])
        print(f"{name:<34} {len(values):>5} {p50:>8.1f} {p95:>8.1f} {worst:>8.1f}")
    print(f"review_p95_ms={np.percentile(figures['key sent -> next card painted'], 95):.1f}")


if __name__ == "__main__":
    main()
