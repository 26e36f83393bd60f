"""Trust earned on audits: how right the LLM is, what its labels are worth, whether to ask it.

The record is kept per label, as a confusion matrix of what the LLM said against what people
answered: a biased LLM (one that says "biased" for nearly everything) is right on one label
and near chance on another, and one accuracy for both would over-trust the first kind of
label and under-trust the second. Each label's figures shrink toward the overall accuracy
(`PRIOR_AUDITS` pseudo-audits), so sparse labels borrow from the whole record.

Only uniform random audits of LLM-labelled items (reason `llm_audit`) measure the LLM: reviews
chosen by priority are the hard items and would make it look worse than it is. The same audits
show the classifier's vote cast before the person answered, so the two members are compared on
the same items, out of sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from agent.routing.bounds import proportion_interval
from agent.routing.evidence import Verdicts
from agent.types import NO_LABEL

LLM_AUDIT = "llm_audit"  # the reason of a uniform random audit of an LLM-labelled item
TIE_MARGIN = 0.05  # how far below the classifier an LLM may be measured and still be asked
MIN_WEIGHT = 0.01  # labels worth less than this (binary: right under 55 %) teach nothing
# An answer expected to be worth less than this share of a certain label is not worth a call:
# on real replays (babe, binary) LLMs right on 63 % or less did not lower the human labels
# that active learning without them needed, those right on 66 % and more did.
CALL_WEIGHT = 0.08
# Calling the LLM on the whole pool is decided on a few dozen audits, and 40 audits of an LLM
# right on 57 % read 65 % or more one time in ten. So the decision waits (small probes, more
# audits) while the call weight lies inside the accuracy's CALL_CONFIDENCE interval, up to
# MAX_TRUST_AUDITS times the configured trust audits.
CALL_CONFIDENCE = 0.8
MAX_TRUST_AUDITS = 3
PRIOR_AUDITS = 8.0  # pseudo-audits per label that pull its figures toward the overall accuracy
_Z_CALL = float(NormalDist().inv_cdf(CALL_CONFIDENCE))  # one-sided z at CALL_CONFIDENCE


@dataclass(frozen=True, eq=False)
class LLMTrust:
    """The LLM's record on `checked` random audits (abstains count as wrong), the classifier's
    on the same items, and what follows: a posterior accuracy and a training weight. The
    optional `confusion` (K, K) counts audits by [LLM's label, person's label] (abstains
    left out); without it every label is trusted at the overall accuracy."""

    checked: int
    llm_correct: int
    clf_correct: int
    n_classes: int
    level: float = 0.95
    confusion: np.ndarray | None = None
    # The classifier as it stands now on the same audits (right, of), cross-fitted so that no
    # audit's own label reaches it; None where only its votes cast at audit time are known.
    clf_now: tuple[int, int] | None = None
    # On those audits, (items only the LLM got right, items only the classifier got right).
    split: tuple[int, int] | None = None

    @property
    def accuracy(self) -> float:
        """Posterior mean of the LLM's accuracy under a uniform prior (defined at 0 audits)."""
        return (self.llm_correct + 1) / (self.checked + 2)

    @property
    def llm_rate(self) -> float:
        """The share of the audits the LLM got right (abstains count as wrong; 0 before any)."""
        return self.llm_correct / max(self.checked, 1)

    @property
    def clf_rate(self) -> float:
        """The classifier's accuracy on the audits: as it stands now where that is known,
        else its votes cast when each audit was made. Those understate it: the classifier
        learns after every round while the audits of a settled call stop coming in, and on
        emotion a weak LLM (right on 45 %) stayed asked on the pool against the classifier's
        early 48 % while the classifier now was right on 51-60 % of the same items."""
        if self.clf_now is not None and self.clf_now[1] > 0:
            return self.clf_now[0] / self.clf_now[1]
        return self.clf_correct / max(self.checked, 1)

    @property
    def bounds(self) -> tuple[float, float]:
        """Two-sided interval of the LLM's accuracy at `level`."""
        low, high = proportion_interval(self.llm_correct, self.checked, self.level)
        return float(low), float(high)

    @property
    def weight(self) -> float:
        """What one LLM label is worth in training, relative to a certain one: ((K a - 1) /
        (K - 1))^2, zero at chance accuracy 1/K and below."""
        return self.weight_at(self.accuracy)

    def weight_at(self, accuracy: float) -> float:
        k = max(self.n_classes, 2)
        return float(max(0.0, (k * accuracy - 1.0) / (k - 1.0)) ** 2)

    def _counts(self) -> np.ndarray:
        k = self.n_classes
        return np.zeros((k, k)) if self.confusion is None else np.asarray(self.confusion, float)

    def precision(self) -> np.ndarray:
        """P(the person agrees | the LLM said l) per label l (K,), shrunk toward `accuracy`."""
        counts = self._counts()
        said = counts.sum(axis=1)
        return (np.diag(counts) + PRIOR_AUDITS * self.accuracy) / (said + PRIOR_AUDITS)

    def label_weights(self) -> np.ndarray:
        """Training weight of an LLM label, per label (K,): `weight_at` its precision."""
        return np.array([self.weight_at(float(p)) for p in self.precision()])

    def likelihood(self) -> np.ndarray:
        """P(the LLM says l | the true label is c) as a (K, K) matrix [l, c]: the audits'
        confusion counts per true label, shrunk toward `accuracy` on the diagonal and the
        rest spread evenly."""
        base = symmetric_likelihood(self.accuracy, self.n_classes)
        counts = self._counts()
        answered = counts.sum(axis=0, keepdims=True)
        return (counts + PRIOR_AUDITS * base) / (answered + PRIOR_AUDITS)

    def established(self, min_audits: int) -> bool:
        """Enough audits to act on: `min_audits`, or already a quarter of them when even the
        low end of the LLM's accuracy makes its labels informative (a strong LLM is trusted
        after one round of audits instead of several)."""
        if self.checked >= min_audits:
            return True
        return self.checked >= max(1, min_audits // 4) and self.informative()

    def informative(self) -> bool:
        """Whether the low end of the measured accuracy still gives the labels weight."""
        return self.weight_at(self.bounds[0]) > MIN_WEIGHT

    def expected_weight(self) -> float:
        """What one more answer is expected to be worth in training: each label's weight,
        by how often the LLM says that label on the audits (overall weight without any)."""
        said = self._counts().sum(axis=1)
        if said.sum() == 0:
            return self.weight
        return float(said @ self.label_weights() / said.sum())

    def worth_calling(self, min_audits: int) -> bool:
        """False once audits show the LLM adds nothing: even at the low end of its measured
        accuracy its labels may carry no weight (near chance level), an answer is expected to
        be worth less than `CALL_WEIGHT` of a certain label (binary: right under about 64 %,
        six labels: under 40 %, or a biased LLM whose habitual label is near chance), or it is
        right clearly less often than the classifier as it stands now on the same items
        (`clearly_below_classifier`; near a tie two independent opinions still help). Until
        `call_settled`, True: the job keeps probing with small batches while audits come
        in."""
        if not self.call_settled(min_audits):
            return True
        worth = self.informative() and self.expected_weight() >= CALL_WEIGHT
        return worth and not self.clearly_below_classifier()

    def clearly_below_classifier(self) -> bool:
        """Whether the classifier is right more often than the LLM by over `TIE_MARGIN`.
        Against the classifier as it stands now (`clf_now`), beyond noise: a paired test on
        the audits where only one of the two is right, one-sided at `CALL_CONFIDENCE`. The
        plain margin stopped LLMs right on 72-79 % (babe, 8-shot) that a classifier at
        80-82 % read a few points ahead of on 60-120 audits, though asking them went on
        saving people's labels. Without that record, the votes cast at audit time."""
        if self.clf_now is None or self.split is None:
            return self.llm_rate + TIE_MARGIN < self.clf_rate
        llm_only, clf_only = self.split
        excess = clf_only - llm_only - TIE_MARGIN * self.clf_now[1]
        return excess > _Z_CALL * math.sqrt(max(llm_only + clf_only, 1))

    def call_settled(self, min_audits: int) -> bool:
        """Whether the audits settle if calling the LLM on everything pays: established, and
        its accuracy's `CALL_CONFIDENCE` interval lies clear of the call weight, or
        `MAX_TRUST_AUDITS` times `min_audits` are in. Not settled merely because the 95 %
        interval reaches chance: 40 audits of an LLM right on 75 % read 70 % or less one time
        in four, where that interval does reach it (on babe, real zephyr and FLAN-UL2 labels
        were dropped after 44 audits that way, and the runs needed margin AL's labels)."""
        if not self.established(min_audits):
            return False
        if self.checked >= MAX_TRUST_AUDITS * min_audits:
            return True
        low, high = (float(b) for b in proportion_interval(
            self.llm_correct, self.checked, 2 * CALL_CONFIDENCE - 1
        ))
        return self.weight_at(low) >= CALL_WEIGHT or self.weight_at(high) < CALL_WEIGHT

    def audits_wanted(self, min_audits: int) -> int:
        """Random LLM audits to have in (answered or waiting): `min_audits`, then half as
        many again at a time while the call is not settled."""
        if self.checked < min_audits or self.call_settled(min_audits):
            return min_audits
        return min(self.checked + max(1, min_audits // 2), MAX_TRUST_AUDITS * min_audits)

    def pays_for_a_call(self, human_label_usd: float | None, usd_per_call: float) -> bool:
        """Whether one more answer is expected to be worth what it costs: its expected worth in
        certain labels (`expected_weight`) at a person's price against the price of a call.
        True when either price is unknown (nothing to weigh)."""
        if human_label_usd is None or usd_per_call <= 0:
            return True
        return self.expected_weight() * human_label_usd >= usd_per_call

    def describe(self) -> str:
        """One line for the progress display and `status`."""
        if self.checked == 0:
            return "LLM not audited yet"
        when = "" if self.clf_now is None else " as it stands now"
        return (
            f"LLM right on {self.llm_rate:.0%} of {self.checked} audits, "
            f"classifier on {self.clf_rate:.0%}{when}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "audits": self.checked,
            "llm_correct": self.llm_correct,
            "classifier_correct": self.clf_correct,
            "classifier_now": None if self.clf_now is None else list(self.clf_now),
            "accuracy": round(self.accuracy, 4),
            "weight": round(self.weight, 4),
        }


def llm_trust(verdicts: Verdicts, n_classes: int, level: float = 0.95) -> LLMTrust:
    """The LLM's and the classifier's record on the random LLM audits among `verdicts`."""
    audited = verdicts.where(verdicts.reason == LLM_AUDIT)
    llm_right = (audited.llm != NO_LABEL) & (audited.llm == audited.human)
    clf_right = (audited.model != NO_LABEL) & (audited.model == audited.human)
    confusion = np.zeros((n_classes, n_classes))
    pair = (audited.llm != NO_LABEL) & (audited.human != NO_LABEL)
    np.add.at(confusion, (audited.llm[pair], audited.human[pair]), 1.0)
    return LLMTrust(
        len(audited), int(llm_right.sum()), int(clf_right.sum()), n_classes, level, confusion
    )


def symmetric_likelihood(accuracy: float, n_classes: int) -> np.ndarray:
    """P(LLM says l | true c) (K, K) [l, c] of an LLM right at `accuracy` whose errors spread
    evenly over the other labels."""
    a = float(np.clip(accuracy, 1e-6, 1 - 1e-6))
    base = np.full((n_classes, n_classes), (1.0 - a) / max(n_classes - 1, 1))
    np.fill_diagonal(base, a)
    return base


def posterior_probs(
    clf_probs: np.ndarray, llm_label: np.ndarray, likelihood: np.ndarray
) -> np.ndarray:
    """P(true label) (n, C): the classifier's probabilities (n, C) times the likelihood of the
    LLM's label (n,) (NO_LABEL: none, the row is left as it is), renormalised."""
    probs = np.asarray(clf_probs, dtype=np.float64)
    voted = llm_label != NO_LABEL
    given = np.asarray(likelihood, dtype=np.float64)[np.where(voted, llm_label, 0)]
    post = np.where(voted[:, None], probs * np.clip(given, 1e-9, None), probs)
    return post / np.maximum(post.sum(axis=1, keepdims=True), 1e-12)


def llm_posterior(
    clf_probs: np.ndarray, llm_label: np.ndarray, likelihood: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best label (n,) and P(it is wrong) (n,) from the classifier's probabilities (n, C) and
    the LLM's label (n,) (NO_LABEL: none), with `likelihood` (C, C) = P(LLM says l | true c)
    as [l, c] (see `LLMTrust.likelihood`)."""
    post = posterior_probs(clf_probs, llm_label, likelihood)
    best = post.argmax(axis=1)
    return best.astype(np.int64), 1.0 - post[np.arange(post.shape[0]), best]
