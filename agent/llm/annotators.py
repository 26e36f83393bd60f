"""Evaluation annotators behind the ChatBackend protocol, so a session cannot tell them from a
live LLM: `SimulatedLLM` (a chosen accuracy, abstain rate and realistic confusions) and
`ReplayLLM` (real per-item labels from a CSV). Both read the items out of the rendered
prompt with `agent.llm.item_markup.find_items` and answer in the requested JSON format, with token
logprobs that spell the confidence. Usage is counted from text lengths; cost is zero.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ConfigError, InputError
from agent.llm.item_markup import ABSTAIN, PromptTexts, find_items
from agent.llm.protocol import ChatChoice, ChatRequest, ChatResponse, TokenLogprob, Usage
from agent.types import LabelSet, text_hash

Verdict = tuple[str | None, float, str | None]  # label (None = abstain), confidence, runner-up
CHARS_PER_TOKEN = 4
# Softmax temperature over cosine similarities of label embeddings. With MiniLM embeddings of
# the banking77 label names, 0.1 sends 27 % of a class's errors to its nearest rival and 60 %
# to its five nearest (0.2: 9 % and 29 %; 0.05: 54 % and 88 %).
CONFUSION_TEMPERATURE = 0.1
CONCENTRATION = 4.0  # Beta concentration of the per-item chance of being right
OVERCONFIDENCE = 0.5  # stated confidence = chance ** this (< 1: overconfident, as LLMs are)


class _AnsweringBackend:
    """Turns per-item verdicts into a chat reply (single object or numbered list) + logprobs."""

    supports_json_schema = True
    supports_logprobs = True
    rationale = "simulated annotator"

    def __init__(self, model: str, label_set: LabelSet) -> None:
        self.model, self.label_set = model, label_set

    def _verdict(self, text: str, sample: int) -> Verdict:
        raise NotImplementedError

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer every item of the prompt, `request.n` independent samples."""
        items = find_items(request.messages) or [(1, "")]
        schema = request.response_schema or {}
        batch = "items" in schema.get("properties", {}) or len(items) > 1
        choices = [self._choice(items, batch, sample, request) for sample in range(request.n)]
        prompt_chars = sum(len(m.get("content") or "") for m in request.messages)
        usage = Usage(
            prompt_tokens=math.ceil(prompt_chars / CHARS_PER_TOKEN),
            completion_tokens=sum(math.ceil(len(c.text) / CHARS_PER_TOKEN) for c in choices),
        )
        return ChatResponse(choices=choices, usage=usage, cost_usd=0.0, model=self.model)

    async def aclose(self) -> None:
        return None

    def _choice(
        self, items: list[tuple[int, str]], batch: bool, sample: int, request: ChatRequest
    ) -> ChatChoice:
        pieces: list[tuple[str, float, list[tuple[str, float]]]] = []  # token, logprob, top
        if batch:
            pieces.append(('{"items": [', 0.0, []))
        for position, (number, text) in enumerate(items):
            label, confidence, runner_up = self._verdict(text, sample)
            value = label if label is not None else ABSTAIN
            head = f'{{"n": {number}, "label": "' if batch else '{"label": "'
            logprob = math.log(max(confidence, 1e-9))
            top = [(value, logprob)]
            if runner_up is not None and confidence < 1.0:
                top.append((runner_up, math.log(max(1.0 - confidence, 1e-9))))
            tail = {"confidence": round(confidence, 4), "rationale": self.rationale}
            pieces.append(((", " if position else "") + head, 0.0, []))
            pieces.append((json.dumps(value)[1:-1], logprob, top))
            pieces.append(('", ' + json.dumps(tail)[1:], 0.0, []))
        if batch:
            pieces.append(("]}", 0.0, []))
        text = "".join(p[0] for p in pieces)
        logprobs = (
            [TokenLogprob(tok, lp, top) for tok, lp, top in pieces] if request.logprobs else None
        )
        return ChatChoice(text=text, logprobs=logprobs, finish_reason="stop")


def confusion_weights(
    n_labels: int,
    label_embeddings: np.ndarray | None = None,
    confusion: np.ndarray | None = None,
    temperature: float = CONFUSION_TEMPERATURE,
) -> np.ndarray:
    """Where each gold label's errors go: rows (C, C) sum to 1 with a zero diagonal.

    From label embeddings (C, d) (label descriptions or class centroids): softmax of cosine
    similarity / temperature over the other labels; from a confusion matrix (C, C): its
    off-diagonal rows; else uniform.
    """
    if label_embeddings is not None:
        vectors = np.asarray(label_embeddings, dtype=np.float64)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        scores = np.exp((vectors @ vectors.T - 1.0) / temperature)
    elif confusion is not None:
        scores = np.asarray(confusion, dtype=np.float64).copy()
    else:
        scores = np.ones((n_labels, n_labels))
    if scores.shape != (n_labels, n_labels):
        raise ConfigError(f"confusion source has shape {scores.shape}, need C={n_labels} labels")
    np.fill_diagonal(scores, 0.0)
    sums = scores.sum(axis=1, keepdims=True)
    uniform = (1.0 - np.eye(n_labels)) / max(n_labels - 1, 1)
    return np.where(sums > 0, scores / np.where(sums > 0, sums, 1.0), uniform)


class SimulatedLLM(_AnsweringBackend):
    """Answers gold with probability `accuracy`, abstains with `abstain_rate`, else a wrong
    label drawn towards confusable classes. Deterministic per (seed, text, sample).

    Each answered item draws a chance of being right c ~ Beta(m K, (1-m) K), with
    m = accuracy / (1 - abstain_rate), and is right with probability c; it states c ** 0.5,
    so confidence ranks answers well (right answers are surer on average) but is
    overconfident, like an uncalibrated LLM. Texts without gold are abstained on.
    """

    def __init__(
        self,
        label_set: LabelSet,
        gold: Mapping[str, str],
        accuracy: float,
        abstain_rate: float = 0.0,
        seed: int = 0,
        label_embeddings: np.ndarray | None = None,
        confusion: np.ndarray | None = None,
        *,
        model: str | None = None,
        confusion_temperature: float = CONFUSION_TEMPERATURE,
    ) -> None:
        if not (0.0 <= accuracy <= 1.0 and 0.0 <= abstain_rate <= 1.0):
            raise ConfigError(
                f"accuracy {accuracy} and abstain rate {abstain_rate} must be in [0, 1]"
            )
        if accuracy + abstain_rate > 1.0 + 1e-9:
            raise ConfigError(f"accuracy {accuracy} + abstain rate {abstain_rate} exceeds 1")
        name = model or f"simulated:acc={accuracy},abstain={abstain_rate},seed={seed}"
        super().__init__(name, label_set)
        self.accuracy, self.abstain_rate, self.seed = accuracy, abstain_rate, seed
        unknown = sorted({g for g in gold.values() if g not in label_set})
        if unknown:
            raise ConfigError(f"gold labels outside the label set: {unknown[:5]}")
        self._gold = PromptTexts((t, label_set.index(g)) for t, g in gold.items())
        self._weights = confusion_weights(
            len(label_set), label_embeddings, confusion, confusion_temperature
        )
        answered = 1.0 - abstain_rate
        self._mean_right = min(1.0, accuracy / answered) if answered > 0 else 0.0

    def _verdict(self, text: str, sample: int) -> Verdict:
        gold = self._gold.get(text)
        rng = np.random.default_rng([self.seed, int(text_hash(text)[:15], 16), sample])
        if gold is None or rng.random() < self.abstain_rate:
            return None, float(rng.uniform(0.3, 0.7)), None
        chance = self._chance(rng)
        size = len(self.label_set)
        wrong = int(rng.choice(size, p=self._weights[gold])) if size > 1 else gold
        right = rng.random() < chance
        label, other = (gold, wrong) if right else (wrong, gold)
        names = self.label_set.names
        return names[label], float(chance**OVERCONFIDENCE), names[other]

    def _chance(self, rng: np.random.Generator) -> float:
        m = self._mean_right
        if m >= 1.0 or m <= 0.0:
            return m
        return float(rng.beta(m * CONCENTRATION, (1.0 - m) * CONCENTRATION))


class ReplayLLM(_AnsweringBackend):
    """Replays real per-item LLM labels from an answer file (`read_answer_file`: id or text,
    label[, confidence]), matched by text (the first row of a repeated text wins). A file keyed
    by id needs `texts_by_id` (the project's id -> text). A label outside the set (e.g.
    'abstain') or a text not in the file abstains."""

    rationale = "replayed answer"

    def __init__(
        self, path: str | Path, label_set: LabelSet, texts_by_id: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"replay:{path}", label_set)
        self.path = Path(path)
        answers = read_answer_file(self.path, "replay")
        self._answers = PromptTexts(_replay_pairs(answers, label_set, texts_by_id))

    def _verdict(self, text: str, sample: int) -> Verdict:
        label, confidence = self._answers.get(text) or (None, 0.5)
        return label, confidence, None


@dataclass(frozen=True)
class AnswerRow:
    row: int  # data rows count from 1 (the header is not a row), as on import
    key: str  # the id or the text, as written
    label: str
    confidence: float  # 1.0 where the file has no confidence


@dataclass(frozen=True)
class AnswerFile:
    """Per-item labels keyed by `id` (the project's ids, as imported) or by `text`: the one
    format of replay files and oracle (gold) files."""

    path: Path
    key: str  # "id" or "text"
    rows: tuple[AnswerRow, ...]

    def first_by_key(self) -> dict[str, AnswerRow]:
        """Key -> its first row (a repeated key keeps its first answer)."""
        first: dict[str, AnswerRow] = {}
        for row in self.rows:
            first.setdefault(row.key, row)
        return first


def read_answer_file(path: Path, what: str) -> AnswerFile:
    """A CSV with a `label` column and an `id` or `text` column (`id` wins where both are),
    optionally `confidence`; InputError naming file, row and field. `what` names the file's
    role in messages ("replay", "oracle")."""
    if not path.is_file():
        raise ConfigError(f"{what} file not found", file=str(path))
    row_no = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [(name or "").strip() for name in reader.fieldnames or ()]
            reader.fieldnames = header
            key = _answer_key(header, path, what)
            rows = []
            for row_no, record in enumerate(reader, start=1):
                rows.append(_answer_row(record, key, path, row_no))
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start})", file=str(path)) from None
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", file=str(path), row=row_no + 1) from None
    return AnswerFile(path, key, tuple(rows))


def _answer_key(header: list[str], path: Path, what: str) -> str:
    if "label" in header and ("id" in header or "text" in header):
        return "id" if "id" in header else "text"
    raise ConfigError(
        f"{what} file needs the header id,label or text,label (it has: "
        f"{', '.join(header) or 'no columns'})",
        file=str(path),
    )


def _answer_row(record: Mapping[str, Any], key: str, path: Path, row_no: int) -> AnswerRow:
    if None in record:  # more cells than the header names
        raise InputError("more cells than the header has", file=str(path), row=row_no)
    value = record.get(key)
    if value is None or not value.strip():
        raise InputError(f"empty {key}", file=str(path), row=row_no, field=key)
    label = (record.get("label") or "").strip()
    return AnswerRow(row_no, value if key == "text" else value.strip(), label,
                     answer_confidence(record, path, row_no))  # fmt: skip


def _replay_pairs(
    answers: AnswerFile, label_set: LabelSet, texts_by_id: Mapping[str, str] | None
) -> list[tuple[str, tuple[str | None, float]]]:
    """(text, (label or None, confidence)) per row; rows keyed by an unknown id are left out."""
    if answers.key == "id" and texts_by_id is None:
        raise ConfigError(
            "replay file keyed by id needs the project's items (run it through labelagent, "
            "or give a text column)", file=str(answers.path)
        )  # fmt: skip
    pairs = []
    for row in answers.rows:
        text = row.key if answers.key == "text" else (texts_by_id or {}).get(row.key)
        if text is not None:
            pairs.append((text, (row.label if row.label in label_set else None, row.confidence)))
    return pairs


def answer_confidence(row: Mapping[str, Any], path: Path, row_no: int) -> float:
    """The optional confidence column; a replayed label without one is taken as certain."""
    raw = (row.get("confidence") or "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"confidence {raw!r} is not a number", file=str(path), row=row_no, field="confidence"
        ) from None
    return min(max(value, 0.0), 1.0)


def make_annotator(
    spec: str,
    label_set: LabelSet | None = None,
    gold: Mapping[str, str] | None = None,
    label_embeddings: np.ndarray | None = None,
    confusion: np.ndarray | None = None,
    texts_by_id: Mapping[str, str] | None = None,
) -> SimulatedLLM | ReplayLLM:
    """Build an annotator from `simulated:acc=0.85,abstain=0.03[,seed=N]` or `replay:PATH`;
    `texts_by_id` (id -> text) lets a replay file keyed by id find its texts."""
    if label_set is None:
        raise ConfigError(f"annotator {spec!r} needs the label set")
    kind, rest = annotator_kind(spec)
    if kind == "replay":
        return ReplayLLM(rest, label_set, texts_by_id)
    params = _parse_params(spec, rest)
    if gold is None:
        raise ConfigError(
            f"{spec!r} needs gold labels (text -> label); on the command line, "
            "--oracle-file FILE (id,label or text,label) gives them"
        )
    return SimulatedLLM(
        label_set,
        gold,
        accuracy=params["acc"],
        abstain_rate=params.get("abstain", 0.0),
        seed=int(params.get("seed", 0)),
        label_embeddings=label_embeddings,
        confusion=confusion,
        model=spec,
    )


def annotator_kind(spec: str) -> tuple[str, str]:
    """('simulated', params) or ('replay', path) of a spec, checked (ConfigError) before any
    work: a bad spec is refused at once, not after the pool is embedded."""
    kind, _, rest = spec.partition(":")
    if kind == "replay" and rest:
        return kind, rest
    if kind != "simulated":
        raise ConfigError(
            f"unknown annotator spec {spec!r}; pass --llm simulated:acc=0.85[,abstain=..] "
            "or --llm replay:FILE",
            field="llm.model",
        )
    _parse_params(spec, rest)
    return kind, rest


def parse_spec_params(
    spec: str, rest: str, keys: tuple[str, ...] = ("acc", "abstain", "seed")
) -> dict[str, float]:
    """`acc=0.85,abstain=0.03,seed=1` (the part of `spec` after its kind) -> numbers, `acc`
    required; ConfigError naming the bad part."""
    params: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in keys:
            raise ConfigError(f"bad part {part!r} in {spec!r}; known keys: {', '.join(keys)}")
        try:
            params[key] = float(value)
        except ValueError:
            raise ConfigError(f"{key}={value!r} in {spec!r} is not a number") from None
    if "acc" not in params:
        raise ConfigError(f"{spec!r} lacks acc=<accuracy>")
    return params


def _parse_params(spec: str, rest: str) -> dict[str, float]:
    params = parse_spec_params(spec, rest)
    if not float(params.get("seed", 0)).is_integer():
        raise ConfigError(f"seed in {spec!r} must be an integer")
    return params
