"""What the LLM must answer and how a reply becomes a validated answer and a confidence.

A pydantic model per label set constrains `label` to the set plus the abstain token; the same
model validates structured output and JSON found in free text. Confidence comes from the
label's token logprobs (`label_confidences`) or from a vote over samples (`vote`).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from agent.config import LLMConfig
from agent.errors import AnswerError, ConfigError
from agent.llm.item_markup import ABSTAIN
from agent.llm.protocol import ChatChoice, TokenLogprob
from agent.types import LabelSet

RATIONALE_CHARS = 300
_SCHEMA_KEYS = {"type", "properties", "required", "enum", "items", "description"}
_LABEL_VALUE_RE = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Answer:
    """One validated answer: `label` None is an explicit abstain, `stated` the model's own
    confidence, `position` the index of its label among the reply's label values."""

    label: str | None
    stated: float
    rationale: str
    position: int = 0


@dataclass(frozen=True)
class Reply:
    """A parsed reply: one answer (or the error to feed back) per item, in item order, and
    every label value as written, in reply order (to find their tokens)."""

    answers: list[Answer | AnswerError]
    raw_labels: list[str]


class _ConfidenceAnswer(BaseModel):
    """Fields shared by every label set's answer model (the label field is added per set)."""

    model_config = ConfigDict(extra="ignore")

    confidence: float = Field(
        ge=0.0, le=1.0, description="probability from 0 to 1 that the label is correct"
    )

    @field_validator("confidence", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        """Accept a percentage (1 < value <= 100) as the probability it means."""
        if isinstance(value, (int, float)) and 1.0 < value <= 100.0:
            return value / 100.0
        return value


class _ReasonedAnswer(_ConfidenceAnswer):
    """An answer that also says why, in one short sentence."""

    rationale: str = Field("", description="one short sentence saying why")

    @field_validator("rationale", mode="before")
    @classmethod
    def _shorten(cls, value: Any) -> Any:
        return value[:RATIONALE_CHARS] if isinstance(value, str) else value


def asks_rationale(cfg: LLMConfig) -> bool:
    """Whether answers carry a rationale: `llm.rationale`, and under "auto" not from an
    endpoint on this machine (a small local model spends most of its time writing it)."""
    if cfg.rationale != "auto":
        return cfg.rationale == "always"
    return not is_loopback(cfg.api_base)


def is_loopback(api_base: str | None) -> bool:
    """Whether an endpoint URL points at this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(api_base).hostname if api_base else None
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_answer_model(label_set: LabelSet, *, rationale: bool = True) -> type[BaseModel]:
    """The answer model of `label_set`: label in the set or ABSTAIN, case and spaces forgiven;
    with a `rationale` field unless told otherwise."""
    if ABSTAIN in label_set:
        raise ConfigError(f"the label set may not contain the reserved label {ABSTAIN!r}")
    allowed = (*label_set.names, ABSTAIN)
    folded: dict[str, list[str]] = {}
    for name in allowed:
        folded.setdefault(name.casefold(), []).append(name)
    if "abstain" not in folded:
        folded["abstain"] = [ABSTAIN]

    def canonical(cls: type[BaseModel], value: Any) -> Any:
        if not isinstance(value, str) or value in allowed:
            return value
        matches = folded.get(value.strip().casefold(), [])
        return matches[0] if len(matches) == 1 else value

    label_type: Any = Literal.__getitem__(allowed)
    validator: Any = field_validator("label", mode="before")(classmethod(canonical))  # type: ignore[arg-type]
    return create_model(
        "LabelAnswer",
        __base__=_ReasonedAnswer if rationale else _ConfidenceAnswer,
        __validators__={"canonical_label": validator},
        label=(label_type, Field(description="a label from the set, or " + ABSTAIN)),
    )


def answer_schema(model: type[BaseModel], *, batch: bool) -> dict[str, Any]:
    """A strict JSON schema (all fields required, no extras) for one answer or a numbered list."""
    single = _strict(model.model_json_schema())
    single["properties"] = {"label": single["properties"].pop("label"), **single["properties"]}
    single["required"] = list(single["properties"])
    if not batch:
        return single
    entry = {
        **single,
        "properties": {"n": {"type": "integer"}, **single["properties"]},
        "required": ["n", *single["required"]],
    }
    return _strict({"type": "object", "properties": {"items": {"type": "array", "items": entry}}})


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` as strict structured output wants it: nested models (`$defs`, `$ref`) written
    out in place, every object closed and all its fields required."""
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(child) for child in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return inline(defs[str(node["$ref"]).rsplit("/", 1)[-1]])
        return {key: inline(value) for key, value in node.items() if key != "$defs"}

    return dict(_strict(inline(schema)))


def _strict(node: Any) -> Any:
    """Keep the keywords every structured-output provider accepts; close every object."""
    if isinstance(node, list):
        return [_strict(child) for child in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items() if key in _SCHEMA_KEYS}
    if "properties" in node:
        out["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
        out["required"] = list(node["properties"])
        out["additionalProperties"] = False
    return out


def first_json(text: str, kinds: tuple[type, ...] = (dict,)) -> Any:
    """The first JSON value of an accepted kind in `text` (tolerates prose and code fences)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, kinds):
            return value
    raise AnswerError("the reply holds no JSON object; answer with one JSON object only")


def validate_entry(model: type[BaseModel], data: Any, position: int = 0) -> Answer:
    """Validate one answer object; AnswerError with a short, model-readable message."""
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise AnswerError("; ".join(problems)[:1500]) from None
    fields = parsed.model_dump()
    label = None if fields["label"] == ABSTAIN else str(fields["label"])
    rationale = str(fields.get("rationale", ""))
    return Answer(label, float(fields["confidence"]), rationale, position)


def parse_reply(model: type[BaseModel], text: str, count: int) -> Reply:
    """Answers for items 1..count: one JSON object for a single item, else a numbered
    "items" list whose entries are validated one by one."""
    if count == 1:
        try:
            value = first_json(text)
            raw = [value["label"]] if isinstance(value.get("label"), str) else []
            return Reply([validate_entry(model, value)], raw)
        except AnswerError as exc:
            return Reply([exc], [])
    try:
        value = first_json(text, (dict, list))
    except AnswerError as exc:
        return Reply([exc] * count, [])
    entries = value.get("items") if isinstance(value, dict) else value
    if not isinstance(entries, list):
        return Reply([AnswerError('the reply has no "items" list')] * count, [])
    found: dict[int, Answer | AnswerError] = {}
    raw_labels: list[str] = []
    for place, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("label"), str):
            raw_labels.append(entry["label"])
        number = entry.get("n", place)
        if not isinstance(number, int) or not 1 <= number <= count or number in found:
            continue
        try:
            found[number] = validate_entry(model, entry, len(raw_labels) - 1)
        except AnswerError as exc:
            found[number] = exc
    missing = AnswerError("no answer was given for this text")
    return Reply([found.get(n, missing) for n in range(1, count + 1)], raw_labels)


def label_confidences(
    text: str, tokens: Sequence[TokenLogprob] | None, raw_labels: Sequence[str]
) -> list[float | None]:
    """exp(sum of logprobs of the tokens spelling each label value), aligned to `raw_labels`.

    None where there are no logprobs, the tokens do not spell the reply, or a label value
    cannot be found; the caller then falls back to the stated confidence.
    """
    out: list[float | None] = [None] * len(raw_labels)
    if not tokens or "".join(t.token for t in tokens) != text:
        return out
    starts = [0]
    for token in tokens:
        starts.append(starts[-1] + len(token.token))
    wanted = 0
    for match in _LABEL_VALUE_RE.finditer(text):
        if wanted == len(raw_labels):
            break
        if _decode(match.group(1)) != raw_labels[wanted]:
            continue  # a quoted "label" in prose before the JSON
        lo, hi = match.start(1), match.end(1)
        total = sum(
            t.logprob for i, t in enumerate(tokens) if starts[i] < hi and starts[i + 1] > lo
        )
        out[wanted] = math.exp(min(total, 0.0))
        wanted += 1
    return out


def _decode(escaped: str) -> str | None:
    """The string a JSON string body spells (None if the escapes are broken)."""
    try:
        return str(json.loads(f'"{escaped}"'))
    except json.JSONDecodeError:
        return None


def vote(answers: Sequence[Answer], total: int, order: LabelSet) -> tuple[Answer, float]:
    """The majority answer of `answers` and its share of `total` samples (invalid ones count
    against). Ties go to the higher mean stated confidence, then the label set's order."""
    groups: dict[str | None, list[Answer]] = {}
    for answer in answers:
        groups.setdefault(answer.label, []).append(answer)

    def rank(label: str | None) -> tuple[int, float, int]:
        members = groups[label]
        position = order.index(label) if label is not None else len(order)
        return len(members), sum(a.stated for a in members) / len(members), -position

    winner = max(groups, key=rank)
    return groups[winner][0], len(groups[winner]) / max(total, len(answers), 1)


def confidence_method(supports_logprobs: bool, samples: int) -> str:
    """'logprob' where the backend returns token logprobs, else 'consistency' when more than
    one sample is configured, else 'stated' (the last resort)."""
    if supports_logprobs:
        return "logprob"
    return "consistency" if samples > 1 else "stated"


@dataclass(frozen=True)
class Verdict:
    """The chosen answer, its confidence, the method that gave it and provenance notes."""

    answer: Answer
    confidence: float
    method: str
    note: dict[str, Any]


def judge(
    method: str,
    valid: Sequence[Answer],
    total: int,
    first: ChatChoice,
    reply: Reply,
    order: LabelSet,
) -> Verdict:
    """Pick the answer among `total` samples (`valid` validated) and its confidence by
    `method`: a vote share ('consistency'), the label tokens' probability ('logprob') or,
    as the flagged last resort, the stated confidence ('stated')."""
    if method == "consistency":
        answer, share = vote(valid, total, order)
        votes = sum(a.label == answer.label for a in valid)
        return Verdict(answer, share, method, {"votes": votes, "samples": total})
    answer = valid[0]
    if method == "logprob":
        found = label_confidences(first.text, first.logprobs, reply.raw_labels)
        confidence = found[answer.position] if answer.position < len(found) else None
        if confidence is not None:
            return Verdict(answer, confidence, "logprob", {})
        note = {"stated_only": True, "confidence_note": "no label logprobs in the reply"}
        return Verdict(answer, answer.stated, "stated", note)
    return Verdict(answer, answer.stated, "stated", {"stated_only": True})
