"""Metrics of a simulated labelling run: corpus accuracy, label-cost curves and their summaries.

A curve is a list of points (human_labels, corpus_accuracy, test_accuracy), sorted by human
labels. Between points a curve is linear; past its ends it is flat (a run that stopped early
keeps its last accuracy), which is what `np.interp` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Point = tuple[int, float, float]


def accuracy(labels: np.ndarray, gold: np.ndarray) -> float:
    """Share of rows where labels (n,) equal gold (n,); 0.0 for an empty array."""
    labels, gold = np.asarray(labels), np.asarray(gold)
    if labels.shape != gold.shape:
        raise ValueError(f"labels {labels.shape} and gold {gold.shape} must have one shape")
    return float(np.mean(labels == gold)) if gold.size else 0.0


def corpus_labels(predicted: np.ndarray, known: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """The corpus as it would ship: predictions (N,) overwritten at rows `known` (h,) by the
    answers (h,) that people (or the LLM) gave there."""
    out = np.array(predicted, copy=True)
    out[np.asarray(known, dtype=np.int64)] = answers
    return out


def _check_curve(h: np.ndarray, values: np.ndarray) -> None:
    if h.ndim != 1 or h.shape != values.shape or h.size == 0:
        raise ValueError(f"a curve needs equal non-empty 1-d arrays; got {h.shape}, {values.shape}")
    if np.any(np.diff(h) < 0):
        raise ValueError("curve points must be sorted by human labels")


def aulc(h: Sequence[float], values: Sequence[float], lo: float, hi: float) -> float:
    """Area under the piecewise-linear curve values(h) over [lo, hi], divided by (hi - lo).

    With values in [0, 1] the result lies in [0, 1]; the curve is held flat past its ends.
    """
    hx, vy = np.asarray(h, dtype=np.float64), np.asarray(values, dtype=np.float64)
    _check_curve(hx, vy)
    if hi <= lo:
        return float(np.interp(lo, hx, vy))
    inner = hx[(hx > lo) & (hx < hi)]
    xs = np.concatenate([[lo], inner, [hi]])
    ys = np.interp(xs, hx, vy)
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / (hi - lo))


def human_labels_to_target(curve: Sequence[Point], target: float) -> int | None:
    """Human labels at the first point whose corpus accuracy reaches `target`; None if none does."""
    for h, corpus, _ in curve:
        if corpus >= target:
            return int(h)
    return None


def mean_curve(curves: Sequence[Sequence[Point]]) -> list[list[float]]:
    """Pointwise mean of several seeds' curves on the union of their human-label grids."""
    if not curves:
        return []
    grid = np.unique(np.concatenate([[p[0] for p in c] for c in curves]))
    cols = []
    for column in (1, 2):
        stacked = [
            np.interp(grid, [p[0] for p in c], [p[column] for p in c]) for c in curves
        ]
        cols.append(np.mean(stacked, axis=0))
    return [[int(h), round(float(a), 5), round(float(b), 5)] for h, a, b in zip(grid, *cols)]


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the values, or None as soon as one of them is None (e.g. a target never reached)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean([float(v) for v in values if v is not None]))
