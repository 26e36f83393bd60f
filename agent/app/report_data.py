"""The figures behind `labelagent report`, read from the store: per round and for the project.

Per round (at the moment it closed): the estimated accuracy with its interval, recomputed by
the one estimator (`agent.routing.accuracy`) over the annotations that existed then; human
labels and LLM calls spent so far; how often the LLM and the classifier agreed on the round's
items; how often the LLM was right on its audited items. For the project: the confusion of
the audited machine labels against people's answers, and the spend.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from agent.config import RoutingConfig
from agent.routing.accuracy import estimate_from_store
from agent.routing.evidence import collect_verdicts
from agent.routing.ppi import AUDIT_POPULATION
from agent.routing.priority import AUDIT_REASONS
from agent.store.protocol import ProjectStore
from agent.types import CurrentLabel, Kind, Source


@dataclass(frozen=True)
class RoundPoint:
    """One closed round, as the project stood when it closed."""

    round: int
    human_labels: int  # human labels given so far
    llm_calls: int  # LLM calls asked for so far (rounds' own count)
    estimate: dict[str, float] | None  # value, low, high; None: nothing checked yet
    agreement: float | None  # share of the round's items where LLM and classifier agreed
    compared: int  # items of the round with both votes
    llm_right: float | None  # share of the round's audited LLM labels people confirmed
    llm_audits: int


@dataclass(frozen=True)
class Confusion:
    """Audited machine labels against people's answers: counts (k, k), rows = people."""

    labels: tuple[str, ...]
    counts: np.ndarray


class AsOf:
    """A read-only view of a store as it stood at time `at`: annotations made later are left
    out (a retraction made later still hides its target: undos are rare). Enough of
    `ProjectStore` for the accuracy estimate; anything else reads the store itself."""

    def __init__(self, store: ProjectStore, rows: list[dict[str, Any]],
                 labels: list[CurrentLabel], at: float, round_id: int) -> None:  # fmt: skip
        self._store, self._at, self._round = store, at, round_id
        self._rows = [r for r in rows if r["created_at"] <= at]
        self._labels = [c for c in labels if c.created_at <= at]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def label_annotations(self, sources: Iterable[str] | None = None) -> list[CurrentLabel]:
        wanted = None if sources is None else set(sources)
        return [c for c in self._labels if wanted is None or c.source in wanted]

    def annotations(self, *, source: str | None = None, kind: str | None = None,
                    item_key: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
        return [r for r in self._rows
                if (source is None or r["source"] == source) and (kind is None or r["kind"] == kind)
                and (item_key is None or r["item_key"] == item_key)]  # fmt: skip

    def get_meta(self, key: str, default: Any = None) -> Any:
        value = self._store.get_meta(key, default)
        if key == AUDIT_POPULATION and value and int(value.get("batch", 0)) > self._round:
            return default  # that audit came later
        return value


def round_points(store: ProjectStore, routing: RoutingConfig) -> list[RoundPoint]:
    """One point per closed round, oldest first."""
    rows, labels = store.annotations(), store.label_annotations()
    votes = _round_votes(rows)
    people = {r["item_key"]: r["label"] for r in rows
              if r["source"] == Source.HUMAN.value and r["kind"] == Kind.LABEL.value}
    points = []
    for rnd, spent, calls in _closed_rounds(store, rows):
        view = AsOf(store, rows, labels, rnd["finished_at"], rnd["id"])
        estimate = estimate_from_store(cast(ProjectStore, view), routing)
        agree, compared, right, audits = _llm_figures(votes.get(rnd["id"], {}), people)
        figure = None if estimate is None else {
            "value": estimate.value, "low": estimate.low, "high": estimate.high}
        points.append(RoundPoint(rnd["id"], spent, calls, figure, agree, compared, right,
                                 audits))  # fmt: skip
    return points


def spend_points(store: ProjectStore) -> list[RoundPoint]:
    """One point per closed round with only what was spent by its close (a multi-label
    project's estimate and votes are not read per round)."""
    return [RoundPoint(rnd["id"], spent, calls, None, None, 0, None, 0)
            for rnd, spent, calls in _closed_rounds(store, store.annotations())]  # fmt: skip


def _closed_rounds(
    store: ProjectStore, rows: list[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], int, int]]:
    """(round, human labels given by its close, LLM calls by then) of each closed round."""
    human_at = sorted(r["created_at"] for r in rows
                      if r["source"] == Source.HUMAN.value and r["kind"] == Kind.LABEL.value)
    calls = 0
    for rnd in store.rounds():
        if rnd["finished_at"] is None:
            continue
        calls += int(rnd["stats"].get("llm_calls", 0) or 0)
        yield rnd, bisect.bisect_right(human_at, rnd["finished_at"]), calls


def _round_votes(rows: list[dict[str, Any]]) -> dict[int, dict[int, dict[str, Any]]]:
    """round -> item -> {'llm': label, 'model': label, 'reason': why it was routed}."""
    found: dict[int, dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r["kind"] != Kind.VOTE.value or r["source"] not in ("llm", "model"):
            continue
        slot = found.setdefault(r["round"], {}).setdefault(r["item_key"], {})
        slot[r["source"]] = r["label"]
        if r["source"] == "model" and '"reason"' in (r["meta"] or ""):
            slot["reason"] = json.loads(r["meta"]).get("reason")
    return found


def _llm_figures(
    votes: dict[int, dict[str, Any]], people: dict[int, str | None]
) -> tuple[float | None, int, float | None, int]:
    """(agreement, items compared, LLM right on audits, audits) of one round's votes."""
    both = [v for v in votes.values() if v.get("llm") and v.get("model")]
    audited = [(v["llm"], people[k]) for k, v in votes.items()
               if v.get("llm") and v.get("reason") in AUDIT_REASONS and people.get(k)]
    agree = sum(v["llm"] == v["model"] for v in both) / len(both) if both else None
    right = sum(a == b for a, b in audited) / len(audited) if audited else None
    return agree, len(both), right, len(audited)


def audit_confusion(store: ProjectStore) -> Confusion:
    """Machine label (the LLM's on LLM audits, else the classifier's) against the person's
    answer, over every audited item (route audits, LLM audits, the final audit)."""
    labels = store.label_set.names
    verdicts = collect_verdicts(store, store.label_set)
    audited = np.isin(verdicts.reason, AUDIT_REASONS) | (verdicts.stage == "final_audit")
    machine = np.where((verdicts.reason == "llm_audit") & (verdicts.llm >= 0),
                       verdicts.llm, verdicts.model)  # fmt: skip
    keep = audited & (machine >= 0)
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(counts, (verdicts.human[keep], machine[keep]), 1)
    return Confusion(labels, counts)


def spend(store: ProjectStore) -> dict[str, Any]:
    """Human labels by operator and the LLM's calls, tokens and dollars, in all."""
    by_actor: dict[str, int] = {}
    for row in store.annotations(source=Source.HUMAN.value, kind=Kind.LABEL.value):
        by_actor[row["actor"]] = by_actor.get(row["actor"], 0) + 1
    return {"human_labels": sum(by_actor.values()), "by_operator": by_actor,
            "llm": store.cache_totals()}  # fmt: skip
