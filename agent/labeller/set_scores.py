"""Each label's P(in the item's set) from the LLM's answer(s), by one of three methods, the
same order as single-label's confidence: token log-probabilities where the reply has them
(`token_scores`), else the share of samples whose set holds the label (`vote_scores`), else
the confidence the model states (`stated_scores`, the last resort).

Whatever the method, a label the answer gives stays at or above one half and a label it
leaves out below, so the proposed set (P >= 0.5) is the set the model answered; how sure
it is shows in how close to one half the scores lie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.types import LabelSet

UNMENTIONED = 0.02  # P(in the set) of a label with no evidence at all (neither given nor seen)
GIVEN_FLOOR, LEFT_OUT_CAP = 0.51, 0.49
Payload = Mapping[str, Any]  # a validated answer: labels, considered, abstain, rationale
# What each method's scores are, in words for status and the review screen.
METHOD_WORDS = {
    "logprob": "token log-probabilities",
    "consistency": "share of samples holding the label",
    "stated": "the LLM's stated confidence",
}


def given(payload: Payload) -> list[str]:
    """The label names the answer gives, in the order written."""
    return [str(entry["label"]) for entry in payload.get("labels", [])]


def answer_set(payload: Payload, label_set: LabelSet) -> tuple[str, ...] | None:
    """The answer's set in label-set order; None for an abstain or an empty set."""
    names = set(given(payload))
    if payload.get("abstain") or not names:
        return None
    return tuple(n for n in label_set.names if n in names)


def stated_scores(payload: Payload, label_set: LabelSet) -> list[float]:
    """(C,) from the stated confidences: a given label's own, a `considered` one's (its lower
    chance), UNMENTIONED for the rest."""
    scores = [UNMENTIONED] * len(label_set)
    for entry in payload.get("considered", []):
        scores[label_set.index(entry["label"])] = min(float(entry["confidence"]), LEFT_OUT_CAP)
    for entry in payload.get("labels", []):
        scores[label_set.index(entry["label"])] = max(float(entry["confidence"]), GIVEN_FLOOR)
    return scores


def token_scores(
    payload: Payload, chances: Mapping[str, float], label_set: LabelSet
) -> list[float]:
    """(C,) from each label's chance over the answer's slots (`set_tokens.slot_chances`, which
    holds every given label); a label never seen at a slot has no evidence (UNMENTIONED); the
    stated word is not used."""
    inside = set(given(payload))
    scores = [UNMENTIONED] * len(label_set)
    for name, chance in chances.items():
        if name in label_set:
            low, high = (GIVEN_FLOOR, 1.0) if name in inside else (0.0, LEFT_OUT_CAP)
            scores[label_set.index(name)] = min(max(chance, low), high)
    return scores


def vote_scores(
    samples: Sequence[Payload | None], label_set: LabelSet
) -> tuple[tuple[str, ...] | None, list[float], dict[str, Any]]:
    """(set, (C,) shares, note) over samples (None: a sample that never validated, counted
    against every label, as single-label's vote counts invalid samples against). The set is
    every label held by at least half the samples; none such is an abstain (the samples agree
    on nothing)."""
    total = max(len(samples), 1)
    sets = [set(given(s)) for s in samples if s is not None and not s.get("abstain")]
    shares = [sum(name in held for held in sets) / total for name in label_set.names]
    chosen = tuple(n for n, share in zip(label_set.names, shares) if share >= 0.5)
    note = {"samples": len(samples), "answered": len(sets)}
    return chosen or None, shares, note


def first_rationale(samples: Sequence[Payload | None], chosen: tuple[str, ...] | None) -> str:
    """The rationale of the first sample that answered the chosen set, else of the first."""
    answered = [s for s in samples if s is not None]
    for sample in answered:
        if chosen is not None and set(given(sample)) == set(chosen):
            return str(sample.get("rationale", ""))
    return str(answered[0].get("rationale", "")) if answered else ""
