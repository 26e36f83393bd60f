"""Plain value types shared by every room: label sets, items, votes, decisions, selections,
queue entries and current labels, and the one "no label" sentinel of label-index arrays."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

# The one "no label" marker in label-index arrays (n,): no label, no vote, or an abstain.
NO_LABEL = -1


def text_hash(text: str) -> str:
    """Stable hash of a text (NFC-normalised) so identical texts share embedding and LLM work."""
    return hashlib.sha256(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()[:32]


class Source(str, Enum):
    """Who produced an annotation."""

    HUMAN = "human"
    LLM = "llm"
    MODEL = "model"
    IMPORT = "import"
    ZEROSHOT = "zeroshot"


class Kind(str, Enum):
    """Whether an annotation is a vote (evidence) or a label that the item now carries."""

    VOTE = "vote"
    LABEL = "label"


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of label names with optional one-line descriptions."""

    names: tuple[str, ...]
    descriptions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.descriptions:
            object.__setattr__(self, "descriptions", tuple("" for _ in self.names))
        if len(self.descriptions) != len(self.names):
            raise ValueError("descriptions must match names one to one")
        if len(set(self.names)) != len(self.names):
            raise ValueError("label names must be unique")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index  # type: ignore[attr-defined]

    def index(self, name: str) -> int:
        """Column of `name` in probability arrays; KeyError if unknown."""
        return self._index[name]  # type: ignore[attr-defined,no-any-return]

    def describe(self, name: str) -> str:
        return self.descriptions[self.index(name)]

    def to_json(self) -> list[dict[str, str]]:
        return [{"name": n, "description": d} for n, d in zip(self.names, self.descriptions)]

    @classmethod
    def from_json(cls, data: list[Any]) -> LabelSet:
        names, descs = [], []
        for entry in data:
            if isinstance(entry, str):
                names.append(entry)
                descs.append("")
            else:
                names.append(str(entry["name"]))
                descs.append(str(entry.get("description", "") or ""))
        return cls(tuple(names), tuple(descs))


@dataclass(frozen=True)
class Item:
    """One row of the corpus. `key` is the store's integer id; `id` the user's."""

    key: int
    id: str
    text: str
    text_hash: str


@dataclass(frozen=True)
class LabelDecision:
    """A validated answer from an annotator: `label` None means an explicit abstain."""

    label: str | None
    confidence: float
    rationale: str = ""
    confidence_method: str = "stated"  # logprob | consistency | stated | simulated
    cached: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    prompt_hash: str = ""
    model: str = ""


@dataclass(frozen=True)
class Vote:
    """One committee member's view of one item."""

    source: Source
    label: str | None
    confidence: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Annotation:
    """An append-only record: who said which label of which item, and how sure."""

    item_key: int
    label: str | None
    source: Source
    kind: Kind = Kind.LABEL
    actor: str = ""
    confidence: float | None = None
    rationale: str = ""
    prompt_hash: str = ""
    round: int = 0
    duration_ms: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """Chosen pool positions (n,) with their scores (n,), best first."""

    indices: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class QueueEntry:
    """One item waiting for a human, with why it was routed and what the machines suggest."""

    item_key: int
    reason: str
    priority: float
    round: int = 0
    suggestion: dict[str, Any] = field(default_factory=dict)
    reviews_needed: int = 1


@dataclass(frozen=True)
class QueueView:
    """An item's place in the review queue: why it was queued, `pending` or `done`, and the
    machines' suggestion shown to the reviewer."""

    item_key: int
    reason: str
    state: str
    suggestion: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CurrentLabel:
    """The label an item carries now, with the annotation that gave it."""

    item_key: int
    label: str | None
    source: str
    confidence: float | None
    actor: str
    round: int
    prompt_hash: str
    created_at: float
    annotation_id: int
    note: str = ""  # the reviewer's free-text note, if any


@dataclass(frozen=True)
class ImportResult:
    added: int
    skipped: int
    seed_labels: int


# ---- multi-label: a set of labels stored as one canonical text --------------------------
# A multi-label project keeps a label set in the annotation's `label` column as a JSON list in
# label-set order ('["anger","sadness"]'): one row per decision, so the append-only store,
# retractions, leases and caches work unchanged, and equal sets always compare equal as text.
def encode_label_set(names: Iterable[str], label_set: LabelSet) -> str:
    """Canonical text of a set of label names (label-set order, no repeats); KeyError if a
    name is not in `label_set`."""
    order = sorted({label_set.index(n) for n in names})
    names_in_order = [label_set.names[i] for i in order]
    return json.dumps(names_in_order, ensure_ascii=False, separators=(",", ":"))


def decode_label_set(value: str | None) -> tuple[str, ...] | None:
    """The names of an encoded label set; None for None (no decision or an abstain)."""
    if value is None:
        return None
    names = json.loads(value)
    if not isinstance(names, list):
        raise ValueError(f"not an encoded label set: {value!r}")
    return tuple(str(n) for n in names)


def label_set_vector(names: Iterable[str], label_set: LabelSet) -> np.ndarray:
    """A (C,) 0/1 int8 indicator row of `names` in `label_set` order."""
    row = np.zeros(len(label_set), dtype=np.int8)
    for name in names:
        row[label_set.index(name)] = 1
    return row


def label_set_problem(names: list[str], label_set: LabelSet) -> str:
    """Why `names` cannot be a label set of the project, or "" when it can."""
    if not names:
        return "empty label set; a multi-label row needs at least one label"
    if any(not n for n in names):
        return "an empty name inside the label set (a doubled or trailing separator?)"
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return f"label '{name}' appears twice in the set"
        seen.add(name)
    unknown = next((n for n in names if n not in label_set), None)
    if unknown is not None:
        return f"label '{unknown}' is not in the label set ({_preview_names(label_set.names)})"
    return ""


def _preview_names(names: tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")
