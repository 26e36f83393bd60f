"""The one answer per item the project stands behind, and where it came from.

Every front door (export, `status`, the review screen, `LabelingSession.results()`) reads the
answer here, so they never disagree. The accuracy estimate (`routing.accuracy`) measures
exactly this answer: an item's label, else the machines' best guess.

- `human`: a person's label (a review, or gold imported with the corpus);
- `auto`: a machine label the job accepted (LLM and classifier agreeing, or the classifier
  sure enough in the final pass);
- `suggested`: no label yet, but the best machine guess of the review queue;
- `none`: nothing to stand behind (never scored, or a person said no label fits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import CurrentLabel, QueueView, Source

STATUSES = ("human", "auto", "suggested", "none")
# Who proposed an accepted machine label, by the source of its annotation.
_MACHINE_SOURCE = {
    Source.LLM.value: "llm",
    Source.MODEL.value: "classifier",
    Source.ZEROSHOT.value: "zero-shot",
}


@dataclass(frozen=True)
class FinalAnswer:
    """`label` is None exactly when `status` is `none`; `confidence` is P(label right) as the
    project sees it (1.0 for a person's label, None where nothing is known)."""

    label: str | None
    status: str
    source: str | None
    confidence: float | None


NO_ANSWER = FinalAnswer(None, "none", None, None)


def suggestion_source(suggestion: Mapping[str, Any]) -> str | None:
    """Who proposed a queue suggestion's best guess: the first opinion ("llm" or "zero-shot")
    when it agrees, else "classifier" when it is the classifier's top label, else "combined"
    (the two weighed together favour a label neither ranked first)."""
    best = suggestion.get("best")
    if best is None:
        return None
    llm = suggestion.get("llm") or {}
    if llm.get("label") == best:
        return "zero-shot" if suggestion.get("first_opinion") == "zero-shot" else "llm"
    top = suggestion.get("classifier") or []
    if top and top[0][0] == best:
        return "classifier"
    return "combined"


def suggestion_confidence(suggestion: Mapping[str, Any]) -> float | None:
    """P(the best guess is right) as the queue entry was scored."""
    p_wrong = suggestion.get("p_wrong")
    return None if p_wrong is None else round(1.0 - float(p_wrong), 4)


def final_answer(label: CurrentLabel | None, queued: QueueView | None) -> FinalAnswer:
    """One item's answer from the label it carries and its queue row (either may be None)."""
    if label is not None and label.source in HUMAN_SOURCES:
        if label.label is None:  # a person said no label fits
            return FinalAnswer(None, "none", "human", None)
        return FinalAnswer(label.label, "human", "human", 1.0)
    if label is not None and label.label is not None:
        source = _MACHINE_SOURCE.get(label.source, label.source)
        return FinalAnswer(label.label, "auto", source, label.confidence)
    if queued is not None and queued.state == "pending" and queued.suggestion.get("best"):
        suggestion = queued.suggestion
        return FinalAnswer(
            suggestion["best"], "suggested", suggestion_source(suggestion),
            suggestion_confidence(suggestion),
        )
    return NO_ANSWER


def final_answers(store: ProjectStore) -> dict[int, FinalAnswer]:
    """Item key -> its answer, for every item of the project (NO_ANSWER where none)."""
    labels = current_labels(store)
    queue = store.queue_views()
    answers: dict[int, FinalAnswer] = {}
    for batch in store.iter_items():
        for item in batch:
            answers[item.key] = final_answer(labels.get(item.key), queue.get(item.key))
    return answers


def status_counts(answers: Mapping[int, FinalAnswer]) -> dict[str, int]:
    """Items per status, every status present (0 where none)."""
    counts = Counter(answer.status for answer in answers.values())
    return {status: counts.get(status, 0) for status in STATUSES}
