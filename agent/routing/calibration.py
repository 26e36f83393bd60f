"""P(right) as people's labels measure it: a monotone map from the classifier's own.

The classifier's top probability is a ranking score, not a frequency: with class-balanced
weights over 8 labels it spreads its mass, and on the demo its labels read 0.53 on average
while 81 % of them were right. Every front door shows P(right) as a probability (the export's
`final_confidence`, the review screen, the job's predicted accuracy that decides when to
audit), so it is mapped onto what people's answers show. Where the LLM voted, P(right) is the
posterior with the LLM trusted as its random audits measured it, and is left as it is.

The map is Platt's: logistic in the log-odds of the raw P(right), fitted on people's labels
scored out of fold (a model that never saw the label, `agent.learn.crossfit`), so the fit is
not flattered by the labels the classifier learnt. It is monotone increasing, so the
classifier's own order of the items is kept; only the values move. People's labels lean toward
the items the machines found hard, so the map tends to err low, the safe side for a stopping
rule (on a classifier too weak for its scores to mean much it can err high: trec on hashing
vectors, 0.05). With too few verdicts, or all of one kind, it is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

MIN_VERDICTS = 30  # people's labels before the map moves anything
MIN_SLOPE = 0.05  # keeps the map strictly increasing: the raw order stays the order
_EDGE = 1e-4  # raw P(right) is clipped to [_EDGE, 1 - _EDGE] before the log-odds


@dataclass(frozen=True)
class Calibration:
    """P(right) = 1 / (1 + exp(-(intercept + slope * logit(raw)))), fitted on `verdicts`
    people's labels (0: the identity)."""

    slope: float = 1.0
    intercept: float = 0.0
    verdicts: int = 0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated P(right) (n,) for raw P(right) values (n,)."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.verdicts == 0:
            return raw
        z = self.intercept + self.slope * _logit(raw)
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def to_json(self) -> dict[str, Any]:
        return {"method": "platt" if self.verdicts else "identity",
                "slope": round(self.slope, 4), "intercept": round(self.intercept, 4),
                "verdicts": self.verdicts}  # fmt: skip


IDENTITY = Calibration()
CALIBRATION_META = "p_right_calibration"  # store meta: the map behind the stored P(right)


def describe(calibration: dict[str, Any]) -> str:
    """One line for `status`: how the P(right) shown was measured."""
    if calibration.get("method") != "platt":
        return "the machines' own (too few people's labels to measure it)"
    return f"measured on {calibration['verdicts']:,} people's labels (Platt, out of fold)"


def fit_calibration(raw: np.ndarray, right: np.ndarray) -> Calibration:
    """The map from raw P(right) (m,) to the share right, fitted on m out-of-fold verdicts
    (`right`, bool (m,)); the identity below MIN_VERDICTS or when all are right or all wrong."""
    raw = np.asarray(raw, dtype=np.float64)
    right = np.asarray(right, dtype=bool)
    if right.size < MIN_VERDICTS or right.all() or not right.any():
        return IDENTITY
    # C = 10: close to the plain maximum likelihood fit, with enough penalty that a sample
    # the raw score separates perfectly does not send the slope to infinity.
    z = _logit(raw)
    model = LogisticRegression(C=10.0).fit(z[:, None], right)
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if slope < MIN_SLOPE:  # the raw score says nothing: the share right, kept in raw order
        share = float(np.clip(right.mean(), _EDGE, 1.0 - _EDGE))
        slope = MIN_SLOPE
        intercept = float(np.log(share / (1.0 - share))) - slope * float(z.mean())
    return Calibration(slope, intercept, int(right.size))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EDGE, 1.0 - _EDGE)
    return np.asarray(np.log(p / (1.0 - p)))
