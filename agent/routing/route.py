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

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from agent.routing.thresholds import Thresholds
from agent.routing.votes import Votes, best_label
from agent.types import NO_LABEL


class Route(IntEnum):
    """Where an item goes."""

    AUTO_ACCEPT = 0
    REVIEW = 1
    AUDIT = 2


# Reason codes index this tuple. In `--llm none` mode the 'llm_*' reasons speak of the
# zero-shot member, which stands in for the LLM as the first opinion.
# 'llm_audit' is a uniform random audit of the LLM's label (it measures the LLM, see `trust`);
# 'llm_off' an item the LLM was not asked about because audits show it adds nothing.
REASONS: tuple[str, ...] = (
    "agree", "disagree", "llm_unsure", "clf_unsure", "abstain",
    "committee_split", "audit", "no_evidence", "llm_audit", "llm_off",
)  # fmt: skip
_R = {name: code for code, name in enumerate(REASONS)}


@dataclass(frozen=True)
class RoutingResult:
    """Per-item outcome, all (n,): route and reason codes (into REASONS), best label (NO_LABEL =
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
    clf_label = np.where(has_clf, votes.clf_probs.argmax(axis=1), NO_LABEL)
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
    label, p_wrong = best_label(votes, keep=np.where(agree, clf_label, NO_LABEL))
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


