"""Every opinion on an item and the best label they support: `Votes` and `best_label`.

Pure functions over arrays: the LLM's label and confidence, the classifier committee's
probabilities, and the zero-shot member, pooled into one best label with P(wrong).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from agent.types import NO_LABEL

_CHUNK = 1 << 16  # rows per block when pooling (n, C) arrays: bounds memory at any n


@dataclass(frozen=True)
class Votes:
    """Every opinion on n items over C classes.

    llm_label (n,) int, NO_LABEL = abstain or no vote; llm_conf (n,) float, NaN = none; clf_probs
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
        label = np.where(missing, NO_LABEL, np.nan_to_num(zs, nan=0.0).argmax(axis=1))
        conf = np.where(missing, np.nan, np.nan_to_num(zs, nan=0.0).max(axis=1))
        members = None if member_probs is None else np.asarray(member_probs)
        return cls(label, conf, np.asarray(clf_probs, dtype=float), members, None, "zeroshot")

    @property
    def n_classes(self) -> int:
        return int(self.clf_probs.shape[1])


def best_label(votes: Votes, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best label (n,) (NO_LABEL where nobody voted) and P(that label is wrong) (n,).

    `keep` (n,) forces the label where >= 0 (e.g. the agreed label); elsewhere the pooled
    argmax wins. The pool is a linear opinion pool (the mean of the members' distributions)
    over the members present for each item: classifier, extra member, and the LLM as conf on
    its label and (1-conf)/(C-1) elsewhere. A mixture is never surer than its surest member,
    so agreement is not multiplied into overconfidence; still, it is a ranking score, not a
    calibrated probability: calibration is what audits and `fit_thresholds` are for.
    """
    n = votes.clf_probs.shape[0]
    forced = np.full(n, NO_LABEL, dtype=np.int64)
    if keep is not None:
        forced = np.asarray(keep, dtype=np.int64)
    labels = np.full(n, NO_LABEL, dtype=np.int64)
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
    return np.where(nobody, NO_LABEL, pick), np.where(nobody, 1.0, np.clip(p_wrong, 0.0, 1.0))


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


