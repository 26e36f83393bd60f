"""The project's accuracy estimate: stratified corpus accuracy with an honest interval.

The estimate is about the corpus as the project would hand it over: every item takes its
label, or its suggested label (the best machine guess) where it has none. Human labels are
taken as right. The rest is measured only on random audits, so the interval is honest:

- after the final audit (a uniform random sample of every machine-labelled item, answered by
  people): two strata, `human` and `machine`;
- before it: `human`, `auto` (auto-accepted in rounds, measured by the audits of would-be
  auto-accepts) and `rest`, which nobody has sampled yet and so counts as anywhere in [0, 1].

A stratum without evidence gets the whole [0, 1], never a guess. Only the store is read, so
`status` can recompute the estimate at any time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from agent.config import RoutingConfig
from agent.routing.bounds import DEFAULT_METHOD, Method, check_level, proportion_interval
from agent.routing.evidence import Verdicts, collect_verdicts
from agent.routing.ppi import AUDIT_POPULATION, AuditBatch, PPIEstimate, pooled_ppi_accuracy
from agent.routing.priority import AUDIT_REASONS
from agent.routing.sources import HUMAN_SOURCES, current_labels
from agent.store.protocol import ProjectStore
from agent.types import Source

Combine = Literal["mover", "bonferroni"]
LOOKS = "target_checks"  # store meta: audits made to decide whether the target is reached
FINAL_AUDIT_CAP = 400  # a uniform sample this large measures the machine labels to +-5 %
FINAL_AUDIT_MIN = 30


@dataclass(frozen=True)
class Stratum:
    """Items whose final label came from one source, with the human check of a sample of them.

    `checked`/`correct` must come from a uniform random sample of the stratum (audits), or the
    interval means nothing. `assumed` takes the accuracy as given (e.g. human labels at 1.0):
    no sampling error is added for it, so state the assumption where you report.
    """

    size: int
    checked: int = 0
    correct: int = 0
    assumed: float | None = None

    def __post_init__(self) -> None:
        if self.size < 0 or not 0 <= self.correct <= self.checked:
            raise ValueError(f"bad stratum counts: {self}")
        if self.assumed is not None and not 0.0 <= self.assumed <= 1.0:
            raise ValueError(f"assumed accuracy must lie in [0, 1], got {self.assumed}")


@dataclass(frozen=True)
class StratumEstimate:
    """One stratum's share of the estimate; `value` is None when nothing was checked."""

    size: int
    checked: int
    correct: int
    value: float | None
    low: float
    high: float
    assumed: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AccuracyEstimate:
    """Estimated corpus accuracy `value` with its interval [low, high] at `level`, the strata
    behind it, how it was made and on how many audit draws."""

    value: float
    low: float
    high: float
    strata: dict[str, StratumEstimate]
    method: str = "stratified-exact"
    audits: int | None = None
    level: float = 0.95

    def to_json(self) -> dict[str, Any]:
        audits = self.audits
        if audits is None:
            audits = sum(p.checked for p in self.strata.values() if not p.assumed)
        return {"value": self.value, "low": self.low, "high": self.high,
                "method": self.method, "audits": audits, "level": self.level}


def estimate_accuracy(
    strata: Mapping[str, Stratum],
    level: float = 0.95,
    method: Method = DEFAULT_METHOD,
    combine: Combine = "mover",
) -> AccuracyEstimate:
    """Stratified corpus accuracy: stratum accuracies weighted by stratum size.

    Interval, combine="mover" (default): MOVER (Zou & Donner 2008) on the weighted sum. Each
    audited stratum's own interval [L_h, U_h] at `level` yields its lower and upper error, and
    the errors add in quadrature: low = value - sqrt(sum (w_h (p_h - L_h))^2), likewise high.
    The per-stratum limits are exact or Wilson, so the interval keeps their asymmetry near 100 %
    where a Wald interval from the stratified variance collapses (no error seen -> zero
    variance). Coverage is near nominal, not guaranteed: the tests check it by simulation.
    combine="bonferroni": per-stratum intervals at 1 - alpha/H, endpoints summed; coverage
    >= `level` by the union bound when the intervals are exact, at 30-50 % more width.
    Either way a stratum with items but no checks adds its whole [0, 1] (never averaged away;
    point value 0.5), and an assumed stratum adds its value exactly.
    """
    check_level(level)
    if combine not in ("mover", "bonferroni"):
        raise ValueError(f"unknown combination {combine!r}; use 'mover' or 'bonferroni'")
    live = {name: s for name, s in strata.items() if s.size > 0}
    total = sum(s.size for s in live.values())
    if total == 0:
        raise ValueError("no items in any stratum: corpus accuracy is undefined")
    n_sampled = sum(s.assumed is None and s.checked > 0 for s in live.values())
    per_level = level if combine == "mover" else 1.0 - (1.0 - level) / max(n_sampled, 1)
    parts = {name: _stratum_estimate(s, per_level, method) for name, s in live.items()}
    w = np.array([s.size / total for s in live.values()])
    point = np.array([0.5 if p.value is None else p.value for p in parts.values()])
    low, high = np.array([[p.low, p.high] for p in parts.values()]).T
    sampled = np.array([not p.assumed and p.checked > 0 for p in parts.values()])
    down, up = (w * (point - low))[sampled], (w * (high - point))[sampled]
    if combine == "mover":  # errors add in quadrature
        err_down, err_up = float(np.sqrt(down @ down)), float(np.sqrt(up @ up))
    else:  # worst case: errors add up
        err_down, err_up = float(down.sum()), float(up.sum())
    value = float(w @ point)
    lo, hi = value - err_down, value + err_up
    # unsampled strata: their own [low, high] replaces the point value, not averaged away
    lo += float(w[~sampled] @ (low - point)[~sampled])
    hi += float(w[~sampled] @ (high - point)[~sampled])
    return AccuracyEstimate(value, max(0.0, float(lo)), min(1.0, float(hi)), parts, level=level)


def _stratum_estimate(s: Stratum, level: float, method: Method) -> StratumEstimate:
    """Point value and interval of one stratum at `level` (already split under Bonferroni)."""
    if s.assumed is not None:
        return StratumEstimate(s.size, s.checked, s.correct, s.assumed, s.assumed, s.assumed, True)
    if s.checked == 0:
        return StratumEstimate(s.size, 0, 0, None, 0.0, 1.0, False)
    low, high = proportion_interval(s.correct, s.checked, level, method)
    value = s.correct / s.checked
    return StratumEstimate(s.size, s.checked, s.correct, value, float(low), float(high), False)


def estimate_from_store(
    store: ProjectStore, routing: RoutingConfig, verdicts: Verdicts | None = None
) -> AccuracyEstimate | None:
    """Stratified estimate over every item; None for an empty project. `verdicts`: the
    store's current human verdicts when the caller has them already."""
    items = store.count_items()
    if items == 0:
        return None
    current = current_labels(store)
    human = sum(1 for c in current.values() if c.source in HUMAN_SOURCES and c.label is not None)
    if verdicts is None:
        verdicts = collect_verdicts(store, store.label_set)
    reviewed = any(c.source == Source.HUMAN.value for c in current.values())
    if not reviewed and not np.any(np.isin(verdicts.reason, AUDIT_REASONS)):
        return None  # nobody has checked anything yet (imported labels are an assumption)
    final = _audits(verdicts, "final_audit")
    if final.checked:
        looks = int(store.get_meta(LOOKS) or 0)
        level = charged_level(looks, routing.confidence_level)
        powered = None
        if routing.estimator == "prediction-powered":
            powered = _prediction_powered(store, verdicts, level)
        if powered is not None:
            return _with_machine_estimate(human, items - human, *powered)
        strata = {"human": Stratum(human, assumed=1.0),
                  "machine": Stratum(items - human, final.checked, final.correct)}
        return estimate_accuracy(strata, level=level)  # charged for the looks, as above
    else:
        auto = sum(1 for c in current.values() if c.source not in HUMAN_SOURCES and c.label)
        route = _audits(verdicts, "route", eligible_only=True)
        strata = {"human": Stratum(human, assumed=1.0),
                  "auto": Stratum(auto, route.checked, route.correct),
                  "rest": Stratum(items - human - auto)}
    return estimate_accuracy(strata, level=routing.confidence_level)


def charged_level(looks: int, level: float) -> float:
    """The level of an estimate after `looks` audits made to decide whether to stop: each
    look is charged half the error rate left (alpha/2, alpha/4, ...), so the chance that any
    reported interval misses stays under alpha however many looks a run takes."""
    return 1.0 - (1.0 - level) / 2**looks


@dataclass(frozen=True)
class LastAudit:
    """The newest audit: machine-labelled items when it was drawn, the distinct items people
    answered, and how many of those had a right machine label."""

    items: int
    asked: int
    right: int


def _prediction_powered(
    store: ProjectStore, verdicts: Verdicts, level: float
) -> tuple[PPIEstimate, LastAudit] | None:
    """PPI++ accuracy of the machine labels from every audit batch answered so far: its
    draws' answers, their predicted P(right) and draw chances, and the population's
    predictions then. None when the store lacks them (projects audited before the estimate
    was prediction-powered)."""
    last = store.get_meta(AUDIT_POPULATION) or {}
    draws = {  # item -> its audit draw (the latest, if an unanswered one was drawn again)
        row["item_key"]: meta
        for row in store.annotations(source=Source.MODEL.value, kind="vote")
        if "final_audit" in (row["meta"] or "")  # cheap test first: votes are many at scale
        and (meta := json.loads(row["meta"])).get("stage") == "final_audit"
    }
    mask = (verdicts.stage == "final_audit") & (verdicts.model >= 0)
    keys, right = verdicts.item_keys[mask], verdicts.model[mask] == verdicts.human[mask]
    answered: dict[int, list[tuple[dict[str, Any], bool]]] = {}
    for key, is_right in zip(keys, right):
        if (meta := draws.get(int(key))) is not None:
            answered.setdefault(int(meta["batch"]), []).append((meta, bool(is_right)))
    kept = [
        (number, batch) for number, rows in sorted(answered.items())
        if (batch := _audit_batch(rows, _population(rows[0][0], number, last))) is not None
    ]
    if not kept:
        return None
    number, batch = kept[-1]
    newest = LastAudit(batch.items, len(answered[number]), sum(r for _, r in answered[number]))
    return pooled_ppi_accuracy([b for _, b in kept], level), newest


def _population(meta: dict[str, Any], batch: int, last: dict[str, Any]) -> dict[str, Any] | None:
    """The population moments of an audit batch: kept on each draw's vote, or (stores from
    before they were) the store's record of the last audit."""
    if "population" in meta:
        return dict(meta["population"])
    return last if last and int(last["batch"]) == batch else None


def _audit_batch(
    rows: list[tuple[dict[str, Any], bool]], population: dict[str, Any] | None
) -> AuditBatch | None:
    """One batch's answered draws, an item drawn k times counted k times."""
    if population is None:
        return None
    times = np.array([m["draws"] for m, _ in rows])
    return AuditBatch(
        np.repeat([float(r) for _, r in rows], times),
        np.repeat([m["p_right"] for m, _ in rows], times),
        np.repeat([m["draw_chance"] for m, _ in rows], times),
        int(population["items"]), float(population["mean_p_right"]),
        float(population["var_p_right"]),
    )


def _with_machine_estimate(
    human: int, machine: int, est: PPIEstimate, newest: LastAudit
) -> AccuracyEstimate:
    """Corpus accuracy: people's labels taken as right, the machine labels at `est`.

    Since the newest audit, its asked items and `others` more have left the M machine labels
    it measured for people's. The asked items' own labels are known, so the rest hold
    M * accuracy - (asked ones right) - (the others' right ones, anywhere in [0, others]):
    not (M - asked - others) * accuracy, which charges them the errors that the audit, drawn
    toward the least sure, found and people fixed (the interval fell 0.1-0.2 points below the
    truth). Where machine labels were added since, the plain share."""
    total = human + machine
    others = newest.items - newest.asked - machine
    if machine > 0 and others >= 0:
        counts = (newest.items * est.value - others * est.value, newest.items * est.low - others,
                  newest.items * est.high)  # fmt: skip
        value, low, high = (float(np.clip(c - newest.right, 0, machine)) / machine for c in counts)
    else:
        value, low, high = est.value, est.low, est.high
    part = StratumEstimate(machine, est.audits, 0, value, low, high, False)
    strata = {"human": StratumEstimate(human, 0, 0, 1.0, 1.0, 1.0, True), "machine": part}
    base, share = human / total, machine / total
    return AccuracyEstimate(
        base + share * value, base + share * low, base + share * high, strata,
        method="prediction-powered", audits=est.audits, level=est.level,
    )


def store_estimate(
    store: ProjectStore, routing: RoutingConfig, verdicts: Verdicts | None = None
) -> dict[str, float] | None:
    """Recompute the estimate and keep it in the store for readers that cannot (the TUI)."""
    estimate = estimate_from_store(store, routing, verdicts)
    value = estimate.to_json() if estimate else None
    store.set_meta("estimated_accuracy", value)
    return value


def _audits(verdicts: Verdicts, stage: str, eligible_only: bool = False) -> Stratum:
    """Audit evidence of one stage: the machines' label checked by a person (size unused)."""
    # an LLM audit is a uniform sample of everything the LLM labelled, so of candidates too
    audited = np.isin(verdicts.reason, AUDIT_REASONS)
    mask = audited & (verdicts.stage == stage) & (verdicts.model >= 0)
    if eligible_only:
        mask &= verdicts.eligible
    correct = int(np.sum(verdicts.model[mask] == verdicts.human[mask]))
    return Stratum(int(mask.sum()), int(mask.sum()), correct)


def final_audit_size(human_budget: int | None, machine_items: int, routing: RoutingConfig) -> int:
    """Items in the final audit: a share of the human budget (or of the cap without one)."""
    if machine_items == 0:
        return 0
    wanted = FINAL_AUDIT_CAP if human_budget is None else routing.final_audit_share * human_budget
    return int(min(machine_items, FINAL_AUDIT_CAP, max(FINAL_AUDIT_MIN, round(wanted))))


