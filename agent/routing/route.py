"""Who looks at which item: agreement routing, audit sampling, fitted thresholds, review priority.

Pure functions over arrays; the session feeds votes in and persists what comes out.

Policy. A *candidate* is an item whose two opinions agree: the first opinion (the LLM, or the
zero-shot member under `--llm none`) names the same label as the classifier committee's
argmax, and the committee is not split. A candidate is auto-accepted when both confidences
clear the thresholds; everything else goes to a human with the first reason that applies.

Audits are a uniform random sample of *all* candidates, not only of those above the current
thresholds: candidates below them go to review anyway, so tagging a random share of them as
audits costs nothing, and it gives evidence over the whole confidence range. That is what lets
thresholds relax without bias: evidence drawn only above the current thresholds could never
certify looser ones. While the thresholds accept nothing (no certified region yet), every
candidate is audited (a census), so the first reviews already count as unbiased evidence.

Selection bias. Reviewed items that were not audited are chosen by priority (hard items
first), so they are not a random sample of candidates; they never enter the precision bound.
Audits should be answered in full (queue them ahead of reviews), or they lose that property.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

import numpy as np

from agent.config import RoutingConfig
from agent.routing.bounds import DEFAULT_METHOD, QUANTILE_LEVELS, Method, fixed_sequence_pass
from agent.routing.bounds import lower_bound as _lower_bound


class Route(IntEnum):
    """Where an item goes."""

    AUTO_ACCEPT = 0
    REVIEW = 1
    AUDIT = 2


# Reason codes index this tuple. In `--llm none` mode the 'llm_*' reasons speak of the
# zero-shot member, which stands in for the LLM as the first opinion.
REASONS: tuple[str, ...] = (
    "agree", "disagree", "llm_unsure", "clf_unsure", "abstain",
    "committee_split", "audit", "no_evidence",
)  # fmt: skip
_R = {name: code for code, name in enumerate(REASONS)}
_CHUNK = 1 << 16  # rows per block when pooling (n, C) arrays: bounds memory at any n
# Threshold chains in quantile-rank space, (llm, clf) speed of loosening; see fit_thresholds.
_CHAIN_TILTS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0))


@dataclass(frozen=True)
class Votes:
    """Every opinion on n items over C classes.

    llm_label (n,) int, -1 = abstain or no vote; llm_conf (n,) float, NaN = none; clf_probs
    (n, C), a NaN row = classifier has no opinion; member_probs (K, n, C) or None; extra_probs
    (n, C) or None: a further member used only for the best label (the zero-shot member).
    """

    llm_label: np.ndarray
    llm_conf: np.ndarray
    clf_probs: np.ndarray
    member_probs: np.ndarray | None = None
    extra_probs: np.ndarray | None = None
    mode: Literal["llm", "zeroshot"] = "llm"

    def __post_init__(self) -> None:
        n, c = self.clf_probs.shape
        if self.llm_label.shape != (n,) or self.llm_conf.shape != (n,):
            raise ValueError(
                f"llm_label {self.llm_label.shape} and llm_conf {self.llm_conf.shape} "
                f"must both be ({n},) to match clf_probs {self.clf_probs.shape}"
            )
        if np.any((self.llm_label < -1) | (self.llm_label >= c)):
            raise ValueError(f"llm_label values must lie in [-1, {c - 1}]")
        if self.member_probs is not None and self.member_probs.shape[1:] != (n, c):
            raise ValueError(f"member_probs {self.member_probs.shape} must be (K, {n}, {c})")
        if self.extra_probs is not None and self.extra_probs.shape != (n, c):
            raise ValueError(f"extra_probs {self.extra_probs.shape} must be ({n}, {c})")

    @classmethod
    def from_llm(
        cls,
        llm_label: np.ndarray,
        llm_conf: np.ndarray,
        clf_probs: np.ndarray,
        member_probs: np.ndarray | None = None,
        zeroshot_probs: np.ndarray | None = None,
    ) -> Votes:
        """LLM as the first opinion; the zero-shot member, if any, only helps pick labels."""
        return cls(
            np.asarray(llm_label, dtype=np.int64),
            np.asarray(llm_conf, dtype=float),
            np.asarray(clf_probs, dtype=float),
            None if member_probs is None else np.asarray(member_probs),
            None if zeroshot_probs is None else np.asarray(zeroshot_probs, dtype=float),
        )

    @classmethod
    def from_zeroshot(
        cls,
        zeroshot_probs: np.ndarray,
        clf_probs: np.ndarray,
        member_probs: np.ndarray | None = None,
    ) -> Votes:
        """`--llm none`: the zero-shot member's argmax and max-prob stand in for the LLM."""
        zs = np.asarray(zeroshot_probs, dtype=float)
        missing = np.isnan(zs).any(axis=1)
        label = np.where(missing, -1, np.nan_to_num(zs, nan=0.0).argmax(axis=1))
        conf = np.where(missing, np.nan, np.nan_to_num(zs, nan=0.0).max(axis=1))
        members = None if member_probs is None else np.asarray(member_probs)
        return cls(label, conf, np.asarray(clf_probs, dtype=float), members, None, "zeroshot")

    @property
    def n_classes(self) -> int:
        return int(self.clf_probs.shape[1])


@dataclass(frozen=True)
class Thresholds:
    """Confidence thresholds for auto-accept and the evidence that certified them.

    `lower_bound` is the one-sided lower confidence bound of auto-accept precision measured on
    `checked` audited candidates inside the region (`correct` of them right) out of `evidence`
    audited candidates in all. The default accepts nothing (+inf): see `fit_thresholds`.
    """

    llm: float = np.inf
    clf: float = np.inf
    fitted: bool = False
    lower_bound: float = 0.0
    checked: int = 0
    correct: int = 0
    evidence: int = 0
    note: str = "no evidence yet: nothing is auto-accepted"

    @property
    def accepts_any(self) -> bool:
        return bool(np.isfinite(self.llm) and np.isfinite(self.clf))

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["llm"] = d["llm"] if self.accepts_any else None
        d["clf"] = d["clf"] if self.accepts_any else None
        return d


@dataclass(frozen=True)
class RoutingResult:
    """Per-item outcome, all (n,): route and reason codes (into REASONS), best label (-1 =
    none), P(best label wrong), candidate (the opinions agree: audit population) and eligible
    (candidate that cleared the thresholds; an eligible audit speaks for the auto-accepted)."""

    route: np.ndarray
    reason: np.ndarray
    label: np.ndarray
    p_wrong: np.ndarray
    candidate: np.ndarray
    eligible: np.ndarray

    def reason_names(self) -> np.ndarray:
        """Reason strings (n,)."""
        names: np.ndarray = np.asarray(REASONS, dtype=object)[self.reason]
        return names

    def counts(self) -> dict[str, int]:
        """Items per route and per reason, for progress displays."""
        out = {r.name.lower(): int(np.sum(self.route == r)) for r in Route}
        per_reason = np.bincount(self.reason, minlength=len(REASONS))
        out.update({f"reason_{name}": int(c) for name, c in zip(REASONS, per_reason, strict=True)})
        return out


def route(
    votes: Votes,
    thresholds: Thresholds,
    audit_rate: float,
    rng: np.random.Generator | int,
    member_agreement: float = 0.6,
    census_rate: float = 1.0,
    max_audits: int | None = None,
) -> RoutingResult:
    """Route n items. `member_agreement`: share of committee members that must vote for the
    committee's argmax, else the item is 'committee_split'. `census_rate`: the audit rate
    while no thresholds are certified (1.0 audits every candidate). `max_audits` caps the
    audits of this call (a uniform subset), so audits never crowd out reviews. Deterministic
    per seed."""
    if not 0.0 <= audit_rate <= 1.0:
        raise ValueError(f"audit_rate must lie in [0, 1], got {audit_rate}")
    gen = np.random.default_rng(rng) if isinstance(rng, int) else rng
    n = votes.clf_probs.shape[0]
    has_llm = votes.llm_label >= 0
    has_clf = ~np.isnan(votes.clf_probs.sum(axis=1))
    clf_label = np.where(has_clf, votes.clf_probs.argmax(axis=1), -1)
    clf_conf = np.where(has_clf, votes.clf_probs[np.arange(n), clf_label], -1.0)
    agree = has_llm & has_clf & (votes.llm_label == clf_label)
    split = _committee_split(votes.member_probs, clf_label, member_agreement) & has_clf
    candidate = agree & ~split
    llm_ok = np.nan_to_num(votes.llm_conf, nan=-1.0) >= thresholds.llm
    clf_ok = clf_conf >= thresholds.clf
    eligible = candidate & llm_ok & clf_ok
    rate = audit_rate if thresholds.accepts_any else max(audit_rate, census_rate)
    audited = candidate & (gen.random(n) < rate)
    if max_audits is not None and audited.sum() > max_audits:  # a uniform subset of the draw
        keep = gen.choice(np.flatnonzero(audited), size=max_audits, replace=False)
        audited = np.zeros(n, dtype=bool)
        audited[keep] = True
    rules = (
        (~has_llm & ~has_clf, "no_evidence"),
        (~has_llm, "abstain"),
        (~has_clf, "clf_unsure"),
        (~agree, "disagree"),
        (split, "committee_split"),
        (audited, "audit"),
        (~llm_ok, "llm_unsure"),
        (~clf_ok, "clf_unsure"),
    )
    reason = np.select([c for c, _ in rules], [_R[r] for _, r in rules], default=_R["agree"])
    route_ = np.full(n, Route.REVIEW, dtype=np.int8)
    route_[eligible & ~audited] = Route.AUTO_ACCEPT
    route_[audited] = Route.AUDIT
    label, p_wrong = best_label(votes, keep=np.where(agree, clf_label, -1))
    return RoutingResult(route_, reason.astype(np.int8), label, p_wrong, candidate, eligible)


def _committee_split(
    member_probs: np.ndarray | None, consensus: np.ndarray, min_share: float
) -> np.ndarray:
    """(n,) True where fewer than `min_share` of K members vote for the consensus label."""
    if member_probs is None:
        return np.zeros(consensus.shape, dtype=bool)
    member_votes = member_probs.argmax(axis=2)  # (K, n); members are finite wherever clf is
    share = (member_votes == consensus[None, :]).mean(axis=0)
    return np.asarray(share < min_share)


def best_label(votes: Votes, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best label (n,) (-1 where nobody voted) and P(that label is wrong) (n,).

    `keep` (n,) forces the label where >= 0 (e.g. the agreed label); elsewhere the pooled
    argmax wins. The pool is a linear opinion pool (the mean of the members' distributions)
    over the members present for each item: classifier, extra member, and the LLM as conf on
    its label and (1-conf)/(C-1) elsewhere. A mixture is never surer than its surest member,
    so agreement is not multiplied into overconfidence; still, it is a ranking score, not a
    calibrated probability: calibration is what audits and `fit_thresholds` are for.
    """
    n = votes.clf_probs.shape[0]
    forced = np.full(n, -1, dtype=np.int64) if keep is None else np.asarray(keep, dtype=np.int64)
    labels = np.full(n, -1, dtype=np.int64)
    p_wrong = np.ones(n)
    for start in range(0, n, _CHUNK):
        block = slice(start, min(start + _CHUNK, n))
        labels[block], p_wrong[block] = _pool_block(votes, block, forced[block])
    return labels, p_wrong


def _pool_block(votes: Votes, rows: slice, forced: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`best_label` on one block of rows, without materialising the LLM's (b, C) distribution."""
    mass, members = _prob_mass(votes, rows)
    label, conf = votes.llm_label[rows], votes.llm_conf[rows]
    voted = (label >= 0) & ~np.isnan(conf)
    conf = np.clip(np.nan_to_num(conf, nan=0.0), 0.0, 1.0)
    rest = np.where(voted, (1.0 - conf) / max(votes.n_classes - 1, 1), 0.0)
    bonus = np.where(voted, conf - rest, 0.0)  # LLM mass on its label beyond `rest`
    at = np.arange(len(label))
    top = mass.argmax(axis=1)
    llm_label = np.where(voted, label, 0)
    llm_wins = voted & (mass[at, llm_label] + bonus > mass[at, top])
    pick = np.where(forced >= 0, forced, np.where(llm_wins, llm_label, top))
    p_pick = mass[at, pick] + rest + np.where(pick == llm_label, bonus, 0.0)
    total = mass.sum(axis=1) + voted
    nobody = members + voted == 0
    p_wrong = 1.0 - p_pick / np.where(nobody, 1.0, total)
    return np.where(nobody, -1, pick), np.where(nobody, 1.0, np.clip(p_wrong, 0.0, 1.0))


def _prob_mass(votes: Votes, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """Summed probabilities (b, C) of the probability members present, and their count (b,)."""
    mats = [m[rows] for m in (votes.clf_probs, votes.extra_probs) if m is not None]
    oks = [~np.isnan(m.sum(axis=1)) for m in mats]
    count = np.sum(oks, axis=0)
    if len(mats) == 1 and oks[0].all():
        return mats[0], count  # the common case: no copy
    mass = np.zeros(mats[0].shape)
    for m, ok in zip(mats, oks, strict=True):
        np.add(mass, m, out=mass, where=ok[:, None])
    return mass, count


@dataclass(frozen=True)
class Evidence:
    """Human verdicts on candidates (m,): first-opinion confidence, classifier probability of
    the agreed label, whether the agreed label was right, and whether the item was an audit."""

    llm_conf: np.ndarray
    clf_prob: np.ndarray
    correct: np.ndarray
    audited: np.ndarray

    @classmethod
    def from_records(cls, records: Sequence[Sequence[float | bool]]) -> Evidence:
        """From (llm_conf, clf_prob, correct[, audited]) rows; a missing `audited` means True."""
        rows = [tuple(r) + (True,) * (4 - len(r)) for r in records]
        cols = np.asarray(rows, dtype=float).reshape(-1, 4).T
        return cls(cols[0], cols[1], cols[2].astype(bool), cols[3].astype(bool))


def fit_thresholds(
    evidence: Evidence, config: RoutingConfig, method: Method = DEFAULT_METHOD
) -> Thresholds:
    """Loosest thresholds whose auto-accept precision lower bound meets the target.

    Only audited candidates enter: they are a uniform sample of candidates, so the precision
    of any region of (llm_conf, clf_prob) measured on them is unbiased. Below
    `config.min_evidence` audits, or when nothing passes, nothing is auto-accepted: a
    threshold without evidence (say 0.9/0.9) would promise a precision nobody measured, and
    the census audit in `route` makes the first reviews count, so evidence comes fast.

    Search: three nested chains of threshold pairs in quantile-rank space, strict to loose
    (both axes together, LLM faster, classifier faster). Each chain is tested by fixed-sequence
    testing at level 1 - alpha/3 (Bonferroni over chains), so with probability >= the
    configured level, every passing pair has precision >= target. The pair with the most
    audited candidates inside (the most auto-accepts) wins.
    """
    audited = evidence.audited
    llm, clf, ok = evidence.llm_conf[audited], evidence.clf_prob[audited], evidence.correct[audited]
    m = len(ok)
    if m < config.min_evidence:
        return Thresholds(evidence=m, note=f"{m} audits < min_evidence {config.min_evidence}")
    level = 1.0 - (1.0 - config.confidence_level) / len(_CHAIN_TILTS)
    best: tuple[int, float, float, float, int] | None = None  # (n, bound, t_llm, t_clf, k)
    for tilt in _CHAIN_TILTS:
        pairs = _chain(np.nan_to_num(llm, nan=-1.0), clf, tilt)
        inside = (llm[None, :] >= pairs[:, :1]) & (clf[None, :] >= pairs[:, 1:])
        n, k = inside.sum(axis=1), (inside & ok[None, :]).sum(axis=1)
        passed = fixed_sequence_pass(k, n, config.target_precision, level, method)
        for i in np.flatnonzero(passed):
            bound = float(_lower_bound(k[i], n[i], level, method))
            key = (int(n[i]), bound, float(pairs[i, 0]), float(pairs[i, 1]), int(k[i]))
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:
        return Thresholds(evidence=m, note=f"no region of {m} audits reaches the target")
    n_in, bound, t_llm, t_clf, k_in = best
    note = f"{k_in}/{n_in} audited auto-accepts right; bound {bound:.3f} at level {level:.4f}"
    return Thresholds(t_llm, t_clf, True, bound, n_in, k_in, m, note)


def _chain(llm: np.ndarray, clf: np.ndarray, tilt: tuple[float, float]) -> np.ndarray:
    """Threshold pairs (s, 2), strict to loose, at quantile ranks 1 - looseness * tilt."""
    loose = 1.0 - np.asarray(QUANTILE_LEVELS)
    q_llm = np.quantile(llm, np.clip(1.0 - loose * tilt[0], 0, 1), method="inverted_cdf")
    q_clf = np.quantile(clf, np.clip(1.0 - loose * tilt[1], 0, 1), method="inverted_cdf")
    pairs = np.stack([q_llm, q_clf], axis=1)
    keep = np.ones(len(pairs), dtype=bool)
    keep[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
    return pairs[keep]


def review_priority(
    p_wrong: np.ndarray, unlabelled_similar: np.ndarray, density_power: float = 1.0
) -> np.ndarray:
    """Value of a human answer (n,): P(best label wrong) x (1 + similar unlabelled items)^power.

    `unlabelled_similar` (n,) counts the not-yet-labelled items an answer will help settle
    (e.g. `unlabelled_in_cell`); power < 1 damps it so one dense cluster cannot starve the rest.
    """
    p = np.asarray(p_wrong, dtype=float)
    d = np.asarray(unlabelled_similar, dtype=float)
    if p.shape != d.shape:
        raise ValueError(f"p_wrong {p.shape} and unlabelled_similar {d.shape} must match")
    priority: np.ndarray = p * np.power(1.0 + np.maximum(d, 0.0), density_power)
    return priority


def unlabelled_in_cell(cells: np.ndarray, unlabelled: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Other unlabelled pool items (n,) sharing each item's cell (e.g. k-means cell).

    cells (N,) int cell of every pool item; unlabelled (N,) bool; items (n,) pool positions.
    """
    cells = np.asarray(cells, dtype=np.int64)
    free = np.asarray(unlabelled, dtype=bool)
    idx = np.asarray(items, dtype=np.int64)
    per_cell = np.bincount(cells[free], minlength=int(cells.max(initial=-1)) + 1)
    others: np.ndarray = per_cell[cells[idx]] - free[idx]
    return others
