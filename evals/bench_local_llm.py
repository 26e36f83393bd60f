"""Accuracy and speed of `--llm local` alone, and of llama.cpp's server at fixed concurrency.

In-process (constrained scoring over the label set, `agent.llm.local`):

    .venv/bin/python -m evals.bench_local_llm --dataset ../shared/datasets/trec --items 200
    .venv/bin/python -m evals.bench_local_llm --dataset examples/support --items 200

Against `python -m llama_cpp.server` (free generation, JSON parsed from the reply), items/s
at each concurrency:

    .venv/bin/python -m evals.bench_local_llm --dataset examples/support --server \\
        --items 32 --concurrency 1,4,16

The prompt holds `--shots` examples per label from the train split (the support corpus: other
items), the same for every item. Prints a table; the LAST line is `local_llm_items_per_s=<v>`
(in-process) or `llama_server_items_per_s=<best over concurrencies>` (server).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from agent.config import LLMConfig
from agent.labeller.labeller import Labeller
from agent.llm.concurrency import ConcurrencyLimit
from agent.llm.factory import make_backend
from agent.llm.local_models import resolve_model
from agent.llm.openai_backend import OpenAIBackend
from agent.llm.protocol import ChatBackend
from agent.types import Item, LabelSet, text_hash
from evals.data import read_labels, read_split

Data = tuple[LabelSet, list[str], np.ndarray, list[str], np.ndarray]


def load(folder: Path) -> Data:
    """(label set, eval texts, eval gold, shot texts, shot gold): train/test, or the support
    corpus (messages.csv + gold.csv), whose shots come from the items not evaluated."""
    labels = read_labels(folder)
    if (folder / "test.csv").is_file():
        texts, gold = read_split(folder / "test.csv", labels)
        shots, shot_gold = read_split(folder / "train.csv", labels)
        return labels, texts, gold, shots, shot_gold
    with (folder / "gold.csv").open(encoding="utf-8") as handle:
        answers = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    with (folder / "messages.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["id"] in answers]
    texts = [row["text"] for row in rows]
    gold = np.asarray([labels.index(answers[row["id"]]) for row in rows], dtype=np.int64)
    return labels, texts, gold, texts, gold


def pick(data: Data, items: int, shots: int, seed: int) -> tuple[list[int], list[tuple[str, str]]]:
    """Eval positions and `shots` examples per label (never an evaluated text)."""
    labels, texts, _, shot_texts, shot_gold = data
    rng = np.random.default_rng(seed)
    chosen = [int(i) for i in rng.permutation(len(texts))[:items]]
    used = {texts[i] for i in chosen}
    examples: list[tuple[str, str]] = []
    for index, name in enumerate(labels.names):
        pool = [i for i in rng.permutation(len(shot_texts)) if shot_gold[i] == index]
        examples += [(shot_texts[i], name) for i in pool if shot_texts[i] not in used][:shots]
    order = rng.permutation(len(examples))
    return chosen, [examples[i] for i in order]


def measure(backend: ChatBackend, data: Data, chosen: list[int], examples: list[tuple[str, str]],
            concurrency: int = 1) -> dict[str, float]:  # fmt: skip
    """Label the chosen items once (no cache); accuracy overall and by confidence half."""
    labels, texts, gold = data[0], data[1], data[2]
    cfg = LLMConfig(samples=1, few_shot_k=min(64, len(examples)), concurrency=concurrency)
    labeller = Labeller(backend, labels, cfg, None)
    items = [Item(k, str(k), texts[i], text_hash(texts[i])) for k, i in enumerate(chosen)]
    started = time.monotonic()
    decisions = labeller.label_items_sync(items, [examples] * len(items))
    seconds = time.monotonic() - started
    right = np.asarray([d.label == labels.names[gold[i]] for d, i in zip(decisions, chosen)])
    conf = np.asarray([d.confidence for d in decisions])
    order = np.argsort(-conf, kind="stable")
    half = len(order) // 2
    return {
        "items": len(items),
        "accuracy": float(right.mean()),
        "acc_confident_half": float(right[order[:half]].mean()) if half else float("nan"),
        "acc_other_half": float(right[order[half:]].mean()) if half else float("nan"),
        "majority": float(np.bincount(gold[chosen]).max() / len(chosen)),
        "items_per_s": len(items) / seconds,
        "seconds": seconds,
    }


@contextlib.contextmanager
def llama_server(model_path: str) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on a free 127.0.0.1 port; its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", model_path,
               "--chat_format", "chatml", "--n_ctx", "4096", "--port", str(port)]  # fmt: skip
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env)  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{base}/models", timeout=2).read()
                break
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--shots", type=int, default=5, help="examples per label in the prompt")
    parser.add_argument("--model", default="local", help="local, local:gemma3-270m or a .gguf")
    parser.add_argument("--server", action="store_true", help="llama.cpp's server, not local")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="no label prior correction (local)")
    args = parser.parse_args(argv)
    data = load(args.dataset)
    chosen, examples = pick(data, args.items, args.shots, args.seed)
    print(f"dataset {args.dataset.name}: {len(chosen)} items, {len(examples)} examples in the "
          f"prompt, model {args.model}")  # fmt: skip
    if not args.server:
        backend = make_backend(LLMConfig(model=args.model))
        backend.calibrate = not args.raw  # type: ignore[attr-defined]
        row = measure(backend, data, chosen, examples)
        print(json.dumps({k: round(v, 4) for k, v in row.items()}))
        print(f"local_llm_items_per_s={row['items_per_s']:.3f}")
        return
    best = 0.0
    with llama_server(resolve_model(args.model)[1]) as base:
        for level in [int(c) for c in args.concurrency.split(",")]:
            backend = OpenAIBackend("openai/local", api_base=base, timeout_s=600.0)
            backend.guard.limit = ConcurrencyLimit(level)  # fixed, to measure the server
            row = measure(backend, data, chosen, examples, concurrency=level)
            print(json.dumps({"concurrency": level, **{k: round(v, 4) for k, v in row.items()}}))
            best = max(best, row["items_per_s"])
    print(f"llama_server_items_per_s={best:.3f}")


if __name__ == "__main__":
    main()
