"""A simulated LLM whose errors follow the content: `--llm content:acc=0.8[,auroc=0.75,...]`.

Real LLM errors gather on ambiguous, atypical and boundary texts, go to the confusable
classes, and a stated confidence separates right from wrong only moderately (published AUROC
about 0.70-0.82). The flat `simulated:` annotator draws each item's chance at random, which
makes confidence routing look near-oracle. This one draws from the text instead:

- difficulty: the out-of-fold probability of the gold label under a logistic regression
  cross-fitted on gold over the pool's own embeddings (an item the embedding space places
  among another class is hard);
- each answered item is right with chance sigmoid(shift + sharpness * logit(p_gold)), the shift
  solved so that the mean chance over the pool is `acc` (with abstains counted as wrong);
- wrong answers go where the out-of-fold classifier puts the rest of its mass (confusable
  classes), or, with probability `bias`, to the `favour` favoured labels; `never` labels are
  never produced (an answer that would be one goes to a favoured label);
- abstains (`abstain` share) fall on the hardest items;
- confidence = sigmoid of d' * right + N(0, 1) noise, with d' = sqrt(2) * Phi^-1(auroc), so
  it ranks right over wrong with AUROC `auroc`.

Parameters: acc (required), auroc 0.75, abstain 0.0, bias 0.0, favour 1, never 0, sharpness
1.0, seed. The answers become a replay file (one per dataset, spec and seed, under the system
temporary folder), answered through the product's ReplayLLM, so every system hears them
through the same ChatBackend protocol.
"""

from __future__ import annotations

import csv
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from agent.errors import ConfigError
from agent.llm.annotators import ReplayLLM, parse_spec_params
from evals.sim import SimContext

PREFIX = "content:"
KEYS = ("acc", "auroc", "abstain", "bias", "favour", "never", "sharpness", "seed")
ABSTAIN = -1


@dataclass(frozen=True)
class ContentSpec:
    """The simulated LLM's parameters (see the module docstring)."""

    acc: float
    auroc: float = 0.75
    abstain: float = 0.0
    bias: float = 0.0
    favour: int = 1
    never: int = 0
    sharpness: float = 1.0
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> ContentSpec:
        """`content:acc=0.8,auroc=0.7,...` -> ContentSpec; ConfigError naming the bad part."""
        values = parse_spec_params(spec, spec.removeprefix(PREFIX), KEYS)
        out = cls(**{k: int(v) if k in ("favour", "never", "seed") else v
                     for k, v in values.items()})  # type: ignore[arg-type]
        out.check(spec)
        return out

    def check(self, spec: str) -> None:
        if not (0 < self.acc < 1 and 0.5 <= self.auroc < 1 and 0 <= self.abstain < 1):
            raise ConfigError(f"{spec!r}: need 0 < acc < 1, 0.5 <= auroc < 1, 0 <= abstain < 1")
        if self.acc + self.abstain >= 1 or not 0 <= self.bias <= 1 or self.sharpness <= 0:
            raise ConfigError(f"{spec!r}: need acc + abstain < 1, 0 <= bias <= 1, sharpness > 0")
        if self.favour < 1 or self.never < 0:
            raise ConfigError(f"{spec!r}: need favour >= 1 and never >= 0")


def gold_oof_proba(ctx: SimContext) -> np.ndarray:
    """Out-of-fold P(class) (N, C) of a logistic regression cross-fitted on gold over the pool
    embeddings; computed once per context (the same for every seed)."""
    key = ("gold_oof", 0)
    if key not in ctx.memo:
        X, y, k = ctx.data.pool.X, ctx.data.pool.y, ctx.n_classes
        counts = np.bincount(y, minlength=k)
        folds = int(min(5, max(2, counts[counts > 0].min())))
        model = LogisticRegression(C=1.0, max_iter=300)
        with threadpool_limits(limits=1):
            proba = cross_val_predict(
                model, X, y, cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                method="predict_proba",
            )
        out = np.full((y.size, k), 1e-6)
        out[:, np.flatnonzero(counts)] = proba
        ctx.memo[key] = out / out.sum(axis=1, keepdims=True)
    proba: np.ndarray = ctx.memo[key]
    return proba


def _solve_shift(score: np.ndarray, mean: float) -> float:
    """The shift s with mean(sigmoid(s + score)) == mean (bisection; monotone in s)."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expit(mid + score).mean() < mean else (lo, mid)
    return (lo + hi) / 2


def simulate(ctx: SimContext, spec: ContentSpec) -> tuple[np.ndarray, np.ndarray]:
    """The LLM's label (N,) (ABSTAIN = none) and confidence (N,) for every pool item."""
    proba, gold, k = gold_oof_proba(ctx), ctx.data.pool.y, ctx.n_classes
    rng = np.random.default_rng([spec.seed, 41])
    p_gold = np.clip(proba[np.arange(gold.size), gold], 1e-4, 1 - 1e-4)
    score = spec.sharpness * logit(p_gold)
    n_abstain = round(spec.abstain * gold.size)
    hardness = -score + rng.normal(0.0, 0.5, gold.size)
    abstained = np.zeros(gold.size, dtype=bool)
    abstained[np.argsort(-hardness)[:n_abstain]] = True
    # Items that can be right: answered, gold not among the labels it never says.
    able = ~abstained & ~np.isin(gold, _banned(spec, k))
    wanted = spec.acc * gold.size / max(int(able.sum()), 1)
    if wanted >= 1:
        raise ConfigError(f"acc={spec.acc} is out of reach with abstain and never as given")
    chance = expit(_solve_shift(score[able], wanted) + score)
    right = able & (rng.random(gold.size) < chance)
    labels = np.where(right, gold, _wrong_labels(proba, gold, spec, rng, k))
    labels = _never_produced(labels, gold, spec, k)
    labels[abstained] = ABSTAIN
    right = labels == gold
    d_prime = np.sqrt(2.0) * norm.ppf(spec.auroc)
    confidence = expit(d_prime * right + rng.normal(0.0, 1.0, gold.size) - d_prime / 2)
    return labels, confidence


def _favoured(spec: ContentSpec, k: int) -> np.ndarray:
    return np.arange(min(spec.favour, k))


def _wrong_labels(
    proba: np.ndarray, gold: np.ndarray, spec: ContentSpec, rng: np.random.Generator, k: int
) -> np.ndarray:
    """A wrong label (N,) per item: where the out-of-fold classifier's other mass lies, or a
    favoured label with probability `bias` (when that is not the gold label)."""
    other = proba.copy()
    other[np.arange(gold.size), gold] = 0.0
    other += 1e-9 * (np.arange(k) != gold[:, None])
    other /= other.sum(axis=1, keepdims=True)
    cumulative = other.cumsum(axis=1)
    draws = (cumulative < rng.random(gold.size)[:, None]).sum(axis=1).clip(0, k - 1)
    favoured = rng.choice(_favoured(spec, k), size=gold.size)
    biased = (rng.random(gold.size) < spec.bias) & (favoured != gold)
    return np.where(biased, favoured, draws)


def _banned(spec: ContentSpec, k: int) -> np.ndarray:
    """The labels it never says: the last `never` ones, never a favoured one."""
    return np.arange(k)[max(k - spec.never, len(_favoured(spec, k))):]


def _never_produced(labels: np.ndarray, gold: np.ndarray, spec: ContentSpec, k: int) -> np.ndarray:
    """Answers naming a label it never says go to the first favoured label."""
    return np.where(np.isin(labels, _banned(spec, k)), _favoured(spec, k)[0], labels)


def replay_file(ctx: SimContext, spec_text: str) -> Path:
    """The simulated answers as a replay CSV (text,label,confidence), written once per
    dataset, spec and pool under the system temporary folder."""
    spec = ContentSpec.parse(spec_text)
    texts = ctx.data.pool.texts
    digest = hashlib.sha256(
        "\x1f".join([ctx.data.name, spec_text, *texts[:50], str(len(texts))]).encode()
    ).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "labelagent-content-llm" / f"{digest}.csv"
    if not path.exists():
        labels, confidence = simulate(ctx, spec)
        names = ctx.data.label_set.names
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label", "confidence"])
            for text, label, conf in zip(texts, labels, confidence):
                writer.writerow([text, "" if label == ABSTAIN else names[label], f"{conf:.4f}"])
        partial.replace(path)
    return path


def content_backend(ctx: SimContext, spec_text: str) -> ReplayLLM:
    """The content-aware simulated LLM as a ChatBackend."""
    return ReplayLLM(replay_file(ctx, spec_text), ctx.data.label_set)
