"""The order of the review queue: what a human answer is worth."""

from __future__ import annotations

import numpy as np

# How much an answer's reach (similar unlabelled items) counts against P(wrong) when ordering
# the queue; small, because on trec 0.1 and 0.0 reached the target with 500 labels, 0.5 with 540.
DENSITY_POWER = 0.1
# Audits go before reviews: they are only an unbiased sample when all are answered.
AUDIT_BONUS = 10.0
AUDIT_REASONS = ("audit", "llm_audit")  # queue reasons that get the bonus


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
