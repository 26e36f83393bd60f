"""Trust earned on audits: how right the LLM is, what its labels are worth, whether to ask it.

Only uniform random audits of LLM-labelled items (reason `llm_audit`) measure the LLM: reviews
chosen by priority are the hard items and would make it look worse than it is. The same audits
show the classifier's vote cast before the person answered, so the two members are compared on
the same items, out of sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.routing.bounds import proportion_interval
from agent.routing.evidence import Verdicts
from agent.types import NO_LABEL

LLM_AUDIT = "llm_audit"  # the reason of a uniform random audit of an LLM-labelled item
TIE_MARGIN = 0.05  # how far below the classifier an LLM may be measured and still be asked
MIN_WEIGHT = 0.01  # labels worth less than this (binary: right under 55 %) teach nothing


@dataclass(frozen=True)
class LLMTrust:
    """The LLM's record on `checked` random audits (abstains count as wrong), the classifier's
    on the same items, and what follows: a posterior accuracy and a training weight."""

    checked: int
    llm_correct: int
    clf_correct: int
    n_classes: int
    level: float = 0.95

    @property
    def accuracy(self) -> float:
        """Posterior mean of the LLM's accuracy under a uniform prior (defined at 0 audits)."""
        return (self.llm_correct + 1) / (self.checked + 2)

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

    def worth_calling(self, min_audits: int) -> bool:
        """False once audits show the LLM adds nothing: even at the low end of its measured
        accuracy its labels may carry no weight (near chance level), or it is right clearly
        less often than the classifier on the same items (by more than `TIE_MARGIN`; near a
        tie two independent opinions still help). The whole pool is at stake, so the benefit
        of the doubt goes to not paying."""
        if not self.established(min_audits):
            return True
        llm_rate = self.llm_correct / self.checked
        clf_rate = self.clf_correct / self.checked
        return self.informative() and llm_rate + TIE_MARGIN >= clf_rate

    def describe(self) -> str:
        """One line for the progress display and `status`."""
        if self.checked == 0:
            return "LLM not audited yet"
        share = self.llm_correct / self.checked
        return (
            f"LLM right on {share:.0%} of {self.checked} audits, "
            f"classifier on {self.clf_correct / self.checked:.0%}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "audits": self.checked,
            "llm_correct": self.llm_correct,
            "classifier_correct": self.clf_correct,
            "accuracy": round(self.accuracy, 4),
            "weight": round(self.weight, 4),
        }


def llm_trust(verdicts: Verdicts, n_classes: int, level: float = 0.95) -> LLMTrust:
    """The LLM's and the classifier's record on the random LLM audits among `verdicts`."""
    audited = verdicts.where(verdicts.reason == LLM_AUDIT)
    llm_right = (audited.llm != NO_LABEL) & (audited.llm == audited.human)
    clf_right = (audited.model != NO_LABEL) & (audited.model == audited.human)
    return LLMTrust(len(audited), int(llm_right.sum()), int(clf_right.sum()), n_classes, level)


def llm_posterior(
    clf_probs: np.ndarray, llm_label: np.ndarray, accuracy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best label (n,) and P(it is wrong) (n,) from the classifier's probabilities (n, C) and
    the LLM's label (n,) (NO_LABEL: none), trusting the LLM at `accuracy`: P(LLM says l | true c)
    is `accuracy` when c == l, else spread evenly over the other labels."""
    probs = np.asarray(clf_probs, dtype=np.float64)
    n, k = probs.shape
    voted = llm_label != NO_LABEL
    a = float(np.clip(accuracy, 1e-6, 1 - 1e-6))
    likelihood = np.full((n, k), (1.0 - a) / max(k - 1, 1))
    likelihood[np.flatnonzero(voted), llm_label[voted]] = a
    post = np.where(voted[:, None], probs * likelihood, probs)
    post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-12)
    best = post.argmax(axis=1)
    return best.astype(np.int64), 1.0 - post[np.arange(n), best]
