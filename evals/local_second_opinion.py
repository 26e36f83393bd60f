"""Does the local LLM add anything to the demo's classifier? (issue 11)

    .venv/bin/python -m evals.local_second_opinion --model local:gemma3-270m --shots 5 \\
        --answers /tmp/gemma5.json

The local model labels every support message once, with `--shots` examples per label from the
corpus in its prompt (`--answers` keeps its answers, so a rerun skips the LLM). Then, over 10
random draws of n labelled messages (n = 40, 80, 120), a logistic regression on the default
embeddings is scored on the rest alone, and combined with the LLM two ways: the product's
linear pool (`agent.routing.votes.best_label`: the LLM's confidence on its label, the rest
spread) and Bayes with the LLM trusted at its accuracy on the n labelled messages. Prints a
table; the last line is `second_opinion_gain_at_120=<points of the linear pool over the
classifier alone at n = 120>`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from agent.config import LLMConfig
from agent.embed.factory import make_embedder
from agent.labeller.labeller import Labeller
from agent.llm.factory import make_backend
from agent.routing.votes import Votes, best_label
from agent.types import Item, text_hash
from evals.bench_local_llm import load

CORPUS = Path("examples/support")
SIZES = (40, 80, 120)


def llm_answers(model: str, shots: int, path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The LLM's label index (n,) (-1: outside the set) and confidence (n,) on every message."""
    if path is not None and path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        return np.asarray(saved["label"]), np.asarray(saved["confidence"], dtype=float)
    labels, texts, gold, _, _ = load(CORPUS)
    rng = np.random.default_rng(0)
    examples = [(texts[i], name) for c, name in enumerate(labels.names)
                for i in rng.permutation(np.flatnonzero(gold == c))[:shots]]  # fmt: skip
    labeller = Labeller(make_backend(LLMConfig(model=model)), labels,
                        LLMConfig(samples=1, few_shot_k=len(examples)), None)  # fmt: skip
    items = [Item(k, str(k), t, text_hash(t)) for k, t in enumerate(texts)]
    started = time.monotonic()
    decisions = labeller.label_items_sync(items, [examples] * len(items))
    print(f"{len(items)} messages in {time.monotonic() - started:.0f} s")
    said = np.asarray([labels.index(d.label) if d.label in labels.names else -1
                       for d in decisions])  # fmt: skip
    confidence = np.asarray([d.confidence for d in decisions], dtype=float)
    if path is not None:
        path.write_text(json.dumps({"label": said.tolist(), "confidence": confidence.tolist()}))
    return said, confidence


def accuracies(vectors: np.ndarray, gold: np.ndarray, said: np.ndarray, conf: np.ndarray,
               n: int, seed: int) -> tuple[float, float, float]:  # fmt: skip
    """On the messages not labelled: classifier alone, linear pool, Bayes."""
    k = int(gold.max()) + 1
    labelled = np.random.default_rng([seed, n]).permutation(gold.size)[:n]
    rest = np.setdiff1d(np.arange(gold.size), labelled)
    model = LogisticRegression(C=10, max_iter=2000).fit(vectors[labelled], gold[labelled])
    probs = np.zeros((gold.size, k))
    probs[:, model.classes_] = model.predict_proba(vectors)
    pooled, _ = best_label(Votes.from_llm(said, np.where(said >= 0, conf, np.nan), probs))
    trust = (np.sum(said[labelled] == gold[labelled]) + 1) / (n + 2)
    likelihood = np.full((gold.size, k), (1 - trust) / (k - 1))
    likelihood[np.flatnonzero(said >= 0), said[said >= 0]] = trust
    bayes = (probs * likelihood).argmax(axis=1)
    return tuple(float(np.mean(guess[rest] == gold[rest]))
                 for guess in (probs.argmax(axis=1), pooled, bayes))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="local:gemma3-270m")
    parser.add_argument("--shots", type=int, default=5, help="examples per label in the prompt")
    parser.add_argument("--answers", type=Path, help="JSON file keeping the LLM's answers")
    args = parser.parse_args(argv)
    _, texts, gold, _, _ = load(CORPUS)
    said, conf = llm_answers(args.model, args.shots, args.answers)
    print(f"LLM {args.model}, {args.shots} examples per label: right on "
          f"{np.mean(said == gold):.3f} of {gold.size}")
    vectors = make_embedder().encode(texts)
    print("| labelled | classifier alone | + LLM, linear pool | + LLM, Bayes |")
    print("|---:|---:|---:|---:|")
    gains = {}
    for n in SIZES:
        alone, pooled, bayes = np.mean([accuracies(vectors, gold, said, conf, n, s)
                                        for s in range(10)], axis=0)  # fmt: skip
        gains[n] = 100 * (pooled - alone)
        print(f"| {n} | {alone:.3f} | {pooled:.3f} | {bayes:.3f} |")
    print(f"second_opinion_gain_at_120={gains[120]:.1f}")


if __name__ == "__main__":
    main()
