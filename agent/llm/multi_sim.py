"""A simulated multi-label LLM behind the ChatBackend protocol: answers a set of labels with a
confidence per label, from gold sets, making the errors real LLMs make on multi-label text.

Errors follow content, not dice alone: items with several gold labels are harder (the chance
of an exact set is lower), and a wrong set is wrong in one of three ways: a missed secondary
label (only where gold has two or more), an added frequent label (the corpus' common ones,
e.g. `neutral`), or a label swapped for a confusable neighbour (nearest label embedding).
Confidences are overconfident but rank right above wrong labels, and a missed label is
sometimes listed under `considered` with a low chance, as a hesitant model would. Asked for
token logprobs, it spells the same chances in them, as the single-label annotators do: each
label it gives has the log of its confidence, and the labels it considered are the first
slot's alternatives with theirs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from agent.errors import ConfigError
from agent.llm.annotators import CHARS_PER_TOKEN, CONCENTRATION, OVERCONFIDENCE, confusion_weights
from agent.llm.item_markup import PromptTexts, find_items
from agent.llm.protocol import ChatRequest, ChatResponse, Usage
from agent.llm.set_reply import spelled
from agent.types import LabelSet, text_hash

MULTI_PENALTY = 0.6  # an item with 2+ gold labels is exactly right this much as often
SURE_MISTAKE = 0.9  # share of wrong labels stated as surely as the right ones
HINT = 0.15  # share of dropped labels the LLM still lists under `considered`
NOISE = 0.1  # sd of the stated confidence around chance ** OVERCONFIDENCE
Scores = list[tuple[str, float]]


class SimulatedMultiLLM:
    """Exact-set accuracy `accuracy` over all items (abstains count as wrong), abstains with
    `abstain_rate`; deterministic per (seed, text)."""

    supports_json_schema = True
    supports_logprobs = True
    rationale = "simulated multi-label annotator"

    def __init__(
        self,
        label_set: LabelSet,
        gold: Mapping[str, tuple[str, ...]],
        accuracy: float,
        abstain_rate: float = 0.03,
        seed: int = 0,
        label_embeddings: np.ndarray | None = None,
        *,
        model: str | None = None,
    ) -> None:
        if not (0.0 <= accuracy <= 1.0 and 0.0 <= abstain_rate <= 1.0):
            raise ConfigError(f"accuracy {accuracy} and abstain {abstain_rate} must be in [0, 1]")
        if accuracy + abstain_rate > 1.0 + 1e-9:
            raise ConfigError(f"accuracy {accuracy} + abstain rate {abstain_rate} exceeds 1")
        self.model = model or f"simulated:acc={accuracy},abstain={abstain_rate},seed={seed}"
        self.label_set, self.seed, self.abstain_rate = label_set, seed, abstain_rate
        rows = [tuple(label_set.index(n) for n in names) for names in gold.values()]
        self._gold = PromptTexts(zip(gold.keys(), rows))
        counts = np.bincount([i for r in rows for i in r], minlength=len(label_set)) + 1.0
        self._frequency = counts / counts.sum()
        self._neighbours = confusion_weights(len(label_set), label_embeddings)
        multi_share = float(np.mean([len(r) > 1 for r in rows])) if rows else 0.0
        answered = max(1.0 - abstain_rate, 1e-9)
        single = (accuracy / answered) / (1.0 - multi_share + MULTI_PENALTY * multi_share)
        self._mean_right = (min(1.0, single), min(1.0, single * MULTI_PENALTY))

    async def complete(self, request: ChatRequest) -> ChatResponse:
        items = find_items(request.messages) or [(1, "")]
        text = items[0][1]
        choices = [spelled(self.answer(text, s), request.logprobs) for s in range(request.n)]
        chars = sum(len(m.get("content") or "") for m in request.messages)
        usage = Usage(math.ceil(chars / CHARS_PER_TOKEN),
                      sum(math.ceil(len(c.text) / CHARS_PER_TOKEN) for c in choices))  # fmt: skip
        return ChatResponse(choices=choices, usage=usage, cost_usd=0.0, model=self.model)

    async def aclose(self) -> None:
        return None

    def answer(self, text: str, sample: int = 0) -> dict[str, Any]:
        """The reply object for one text: labels (with confidences), considered, abstain."""
        gold = self._gold.get(text)
        rng = np.random.default_rng([self.seed, int(text_hash(text)[:15], 16), sample])
        if gold is None or rng.random() < self.abstain_rate:
            return {"labels": [], "considered": [], "abstain": True, "rationale": self.rationale}
        chance = self._chance(rng, self._mean_right[len(gold) > 1])
        # Stated confidence: overconfident in the chance, with noise of its own (a model's
        # words are a rough reading of its chance).
        sure = float(np.clip(chance**OVERCONFIDENCE + rng.normal(0.0, NOISE), 0.5, 0.999))
        chosen: Scores = [(self.label_set.names[i], sure) for i in gold]
        considered: Scores = []
        if rng.random() >= chance:
            chosen, considered = self._mistake(list(gold), sure, rng)
        return {
            "labels": [{"label": n, "confidence": round(c, 4)} for n, c in chosen],
            "considered": [{"label": n, "confidence": round(c, 4)} for n, c in considered],
            "abstain": False,
            "rationale": self.rationale,
        }

    def _mistake(
        self, gold: list[int], sure: float, rng: np.random.Generator
    ) -> tuple[Scores, Scores]:
        """One content-shaped error: miss a secondary label, add a frequent one, or swap one
        for its confusable neighbour. The wrong part is stated less surely than the rest."""
        names = self.label_set.names
        kinds = ["add", "swap"] + (["miss", "miss"] if len(gold) > 1 else [])
        kind = kinds[int(rng.integers(len(kinds)))]
        # Mostly as sure as the rest, sometimes visibly shakier: with NOISE, SURE_MISTAKE and
        # HINT the set's confidence (its least sure label) separates right from wrong sets at
        # AUROC 0.78 on 2,000 go_emotions comments (DESIGN asks about 0.75).
        shaky = sure if rng.random() < SURE_MISTAKE else float(rng.uniform(0.5, max(sure, 0.51)))
        keep = [(names[i], sure) for i in gold]
        if kind == "miss":
            lost = gold[int(rng.integers(1, len(gold)))]
            keep = [(names[i], sure) for i in gold if i != lost]
            hint = [(names[lost], float(rng.uniform(0.15, 0.5)))] if rng.random() < HINT else []
            return keep, hint
        if kind == "add" or len(self.label_set) - len(gold) < 1:
            extra = self._draw(self._frequency, gold, rng)
            return [*keep, (names[extra], shaky)], []
        lost = gold[int(rng.integers(len(gold)))]
        other = self._draw(self._neighbours[lost], gold, rng)
        swapped = [(names[i], sure) for i in gold if i != lost] + [(names[other], shaky)]
        return swapped, [(names[lost], float(rng.uniform(0.2, 0.5)))] if rng.random() < HINT else []

    @staticmethod
    def _draw(weights: np.ndarray, exclude: list[int], rng: np.random.Generator) -> int:
        p = np.asarray(weights, dtype=np.float64).copy()
        p[exclude] = 0.0
        if p.sum() <= 0:
            p = np.ones_like(p)
            p[exclude] = 0.0
        return int(rng.choice(len(p), p=p / p.sum()))

    @staticmethod
    def _chance(rng: np.random.Generator, mean: float) -> float:
        if mean >= 1.0 or mean <= 0.0:
            return mean
        return float(rng.beta(mean * CONCENTRATION, (1.0 - mean) * CONCENTRATION))


class ReplayMultiLLM(SimulatedMultiLLM):
    """Replays real per-item label sets (text -> (names, confidence), read and checked at the
    edge: `agent.app.setfiles.replay_sets`); a text not in the file is abstained on."""

    rationale = "replayed answer"

    def __init__(
        self, label_set: LabelSet, answers: Mapping[str, tuple[tuple[str, ...], float]],
        model: str,
    ) -> None:  # fmt: skip
        self.model, self.label_set = model, label_set
        self._answers = PromptTexts(answers.items())

    def answer(self, text: str, sample: int = 0) -> dict[str, Any]:
        found = self._answers.get(text)
        if found is None:
            return {"labels": [], "considered": [], "abstain": True, "rationale": self.rationale}
        names, confidence = found
        return {"labels": [{"label": n, "confidence": confidence} for n in names],
                "considered": [], "abstain": False, "rationale": self.rationale}  # fmt: skip
