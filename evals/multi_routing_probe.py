"""How much of a multi-label pool the per-label agreement rule can auto-accept (issue 21):
the simulated multi-label LLM on every item, one-vs-rest fitted on a random sample of people's
sets, and for each pair of thresholds (LLM, classifier) the share of the remaining items whose
every label is agreed with both sure, and the exact-set precision of those items; beside it,
for comparison,
a rule the product does not use (the LLM sure of every label, the classifier not sure of the
opposite of any).

    python -m evals.multi_routing_probe --dataset ../shared/datasets/go_emotions --pool-size 2000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from agent.config import DEFAULT_EMBEDDING_MODEL
from agent.labeller.multi import UNMENTIONED
from agent.learn.multilabel import fit_ovr
from agent.llm.multi_sim import SimulatedMultiLLM
from evals.multi_run import load_pool


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(prog="python -m evals.multi_routing_probe")
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--pool-size", type=int, default=2000)
    p.add_argument("--acc", type=float, default=0.75)
    p.add_argument("--humans", default="200,500,1000")
    args = p.parse_args(argv)
    pool = load_pool(args.dataset, args.pool_size, 0, DEFAULT_EMBEDDING_MODEL)
    names = pool.label_set.names
    gold = {t: tuple(n for n, on in zip(names, g) if on) for t, g in zip(pool.texts, pool.gold)}
    sim = SimulatedMultiLLM(pool.label_set, gold, args.acc, label_embeddings=pool.label_vectors)
    llm = np.full(pool.gold.shape, UNMENTIONED)
    abstain = np.zeros(len(pool.texts), bool)
    for i, text in enumerate(pool.texts):
        answer = sim.answer(text)
        abstain[i] = bool(answer["abstain"])
        for e in answer["considered"]:
            llm[i, pool.label_set.index(e["label"])] = min(e["confidence"], 0.49)
        for e in answer["labels"]:
            llm[i, pool.label_set.index(e["label"])] = max(e["confidence"], 0.51)
    right = ((llm >= 0.5) == pool.gold).all(axis=1) & ~abstain
    lines = [f"simulated LLM exact-set accuracy on the pool: {right.mean():.3f}", "",
             "| people's sets | t LLM | t classifier | auto share | auto precision |",
             "|---|---|---|---|---|"]  # fmt: skip
    rng = np.random.default_rng(0)
    for n_human in (int(h) for h in args.humans.split(",")):
        seen = np.zeros(len(pool.texts), bool)
        seen[rng.choice(len(pool.texts), n_human, replace=False)] = True
        with threadpool_limits(1):
            clf = fit_ovr(pool.vectors[seen], pool.gold[seen]).predict_proba(pool.vectors)
        rest = ~seen & ~abstain
        agree = (llm >= 0.5) == (clf >= 0.5)
        for t_llm, t_clf in ((0.85, 0.5), (0.85, 0.6), (0.85, 0.7), (0.85, 0.85)):
            sure = (np.maximum(llm, 1 - llm) >= t_llm) & (np.maximum(clf, 1 - clf) >= t_clf)
            auto = (agree & sure).all(axis=1) & rest
            prec = f"{right[auto].mean():.3f}" if auto.any() else "-"
            lines.append(f"| {n_human} | {t_llm} | {t_clf} | {auto.sum() / rest.sum():.3f} | "
                         f"{prec} |")  # fmt: skip
        # Not the product's rule: the LLM sure of every label, the classifier not sure of
        # the opposite of any (what "trust earned from audits" would make possible).
        for t_llm in (0.8, 0.9):
            llm_sure = (np.maximum(llm, 1 - llm) >= t_llm).all(axis=1)
            opposed = (~agree & (np.maximum(clf, 1 - clf) >= 0.85)).any(axis=1)
            auto = llm_sure & ~opposed & rest
            prec = f"{right[auto].mean():.3f}" if auto.any() else "-"
            lines.append(f"| {n_human} | {t_llm} | not opposed at 0.85 | "
                         f"{auto.sum() / rest.sum():.3f} | {prec} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
