"""A million-row run on one machine (issue 12 part 2): time each stage and the peak memory.

Builds a corpus of `--rows` distinct texts (a shared dataset's texts repeated, each copy
perturbed: one word dropped, one borrowed from another text, so no two rows are equal and no
embedding is deduplicated away), then runs the CLI's own commands in this process, stage by
stage: init (with `--embedding-model`, default the static tier), import, embedding of every row
into the project's vector cache, one `run` round (pool load, scoring, selection, simulated LLM,
routing, the operator answering from the gold file), and export. Per stage: wall seconds and
peak RSS (the kernel's high-water mark, reset between stages where Linux allows).
Last line: `scale_1m_seconds=<total> peak_rss_gb=<peak>` (the name keeps "1m" at any --rows).

    .venv/bin/python -m evals.bench_scale --rows 100000 [--data ../shared/datasets/ag_news]
"""

from __future__ import annotations

import argparse
import csv
import gc
import random
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "ag_news"


@dataclass
class Stage:
    name: str
    seconds: float
    peak_gb: float  # high-water RSS during the stage (since the process start if not resettable)
    rss_after_gb: float


def rss_gb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident memory of this process in GB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def reset_peak() -> None:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); harmless where refused."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@contextmanager
def stage(name: str, stages: list[Stage]) -> Iterator[None]:
    gc.collect()
    reset_peak()
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    stages.append(Stage(name, seconds, rss_gb("VmHWM"), rss_gb()))
    done = stages[-1]
    print(f"[{name}] {seconds:.1f} s, peak RSS {done.peak_gb:.2f} GB, now {done.rss_after_gb:.2f}",
          flush=True)


def perturb(words: list[str], rng: random.Random, donor: list[str]) -> str:
    """One word dropped and one borrowed word inserted, at seeded places."""
    out = list(words)
    if len(out) > 3:
        del out[rng.randrange(len(out))]
    out.insert(rng.randrange(len(out) + 1), rng.choice(donor))
    return " ".join(out)


def build_corpus(data: Path, rows: int, out: Path, gold: Path, seed: int = 0) -> None:
    """`rows` distinct texts as id,text CSV, and their labels as id,label CSV."""
    with (data / "train.csv").open(encoding="utf-8", newline="") as handle:
        base = [(r["text"], r["label"]) for r in csv.DictReader(handle) if r["text"].strip()]
    rng, seen = random.Random(seed), set()
    donor = [w for text, _ in base[:2000] for w in text.split()]
    with out.open("w", encoding="utf-8", newline="") as t, gold.open("w", newline="") as g:
        texts, labels = csv.writer(t), csv.writer(g)
        texts.writerow(["id", "text"])
        labels.writerow(["id", "label"])
        for i in range(rows):
            text, label = base[i % len(base)]
            if i >= len(base):
                text = perturb(text.split(), rng, donor)
            while text in seen:
                text = perturb(text.split(), rng, donor)
            seen.add(text)
            texts.writerow([f"r{i}", text])
            labels.writerow([f"r{i}", label])


def cli(*args: str) -> None:
    """One labelagent command in this process, as the console script runs it."""
    from agent.app.cli import app

    app(args=list(args), standalone_mode=False)


def embed_all(project: Path) -> None:
    """Every row's vector into the project's cache, by the path `run` takes on its first
    round (texts streamed from the store a page at a time)."""
    from agent.embed import make_embedder
    from agent.embed.project import embed_project
    from agent.store.sqlite import Store

    with Store.open(project) as store:
        embedder = make_embedder(store_config_model(project))
        keys, vectors = embed_project(store, embedder, batch_size=1024)
        print(f"pool arrays: {len(keys)} keys and vectors {vectors.nbytes / 1e9:.2f} GB")


def store_config_model(project: Path) -> str:
    import json

    return str(json.loads((project / "labelagent.json").read_text())["embedding_model"])


def stages_for(args: argparse.Namespace, tmp: Path) -> list[tuple[str, Callable[[], None]]]:
    corpus, gold, project = tmp / "corpus.csv", tmp / "gold.csv", tmp / "project"
    labels = args.data / "labels.json"
    return [
        ("build corpus", lambda: build_corpus(args.data, args.rows, corpus, gold)),
        ("init", lambda: cli("init", str(project), "--labels", str(labels),
                             "--embedding-model", args.embedder)),
        ("import", lambda: cli("import", str(project), str(corpus), "--id-col", "id")),
        ("embed", lambda: embed_all(project)),
        ("run 1 round", lambda: cli(
            "run", str(project), "--llm", "simulated:acc=0.85", "--rounds", "1",
            "--batch-size", str(args.batch_size), "--human-budget", str(args.human_budget),
            "--oracle-file", str(gold))),
        ("export", lambda: cli("export", str(project), str(tmp / "labels.parquet"))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a shared dataset folder")
    parser.add_argument("--embedder", default="static", help="embedding model of the project")
    parser.add_argument("--batch-size", type=int, default=200, help="items in the round")
    parser.add_argument("--human-budget", type=int, default=100)
    parser.add_argument("--tmp", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    stages: list[Stage] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        for name, step in stages_for(args, Path(folder)):
            with stage(name, stages):
                step()
    timed = [s for s in stages if s.name != "build corpus"]
    total = sum(s.seconds for s in timed)
    peak = max(s.peak_gb for s in stages)
    print(f"\n{args.rows} rows from {args.data.name}, embedder {args.embedder}")
    print("| stage | seconds | peak RSS GB | RSS after GB |\n|---|---:|---:|---:|")
    for s in stages:
        print(f"| {s.name} | {s.seconds:.1f} | {s.peak_gb:.2f} | {s.rss_after_gb:.2f} |")
    print(f"scale_1m_seconds={total:.1f} peak_rss_gb={peak:.2f}")


if __name__ == "__main__":
    main()
