"""The report's PNG figures (matplotlib, drawn off-screen with the Agg backend).

Each function takes the plain figures of `report_data` and writes one PNG; a figure without
data says so in its frame instead of drawing an empty axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.app.report_data import Confusion, RoundPoint

DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def accuracy_plot(points: list[RoundPoint], path: Path) -> Path:
    """Estimated accuracy (point and 95 % interval) after each round, against human labels."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    known = [p for p in points if p.estimate is not None]
    if not known:
        _empty(ax, "no estimate yet: nobody has checked any label")
    else:
        x = np.array([p.human_labels for p in known])
        value, low, high = (np.array([p.estimate[k] for p in known])  # type: ignore[index]
                            for k in ("value", "low", "high"))  # fmt: skip
        ax.fill_between(x, low, high, step=None, alpha=0.25, color="tab:blue",
                        label="95% interval")  # fmt: skip
        ax.plot(x, value, "o-", color="tab:blue", label="estimated accuracy")
        ax.plot(x, low, "_", color="tab:blue", markersize=12)
        for name, xi, yi in _round_names(known, x, low):
            ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(0, -12),
                        ha="center", fontsize=7, color="0.4")  # fmt: skip
        ax.set_ylim(max(0.0, float(low.min()) - 0.08), 1.0)
        ax.set_xlabel("human labels spent")
        ax.set_ylabel("corpus accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    ax.set_title("Estimated corpus accuracy after each round")
    return _save(fig, path)


def _round_names(
    points: list[RoundPoint], x: np.ndarray, y: np.ndarray
) -> list[tuple[str, float, float]]:
    """One name per run of rounds that spent no human label in between ("r3-r8"), placed at
    the run's last point, so that names never print over each other."""
    runs: list[tuple[str, float, float]] = []
    start = 0
    for i in range(len(points)):
        if i + 1 < len(points) and x[i + 1] == x[i]:
            continue
        first, last = points[start].round, points[i].round
        runs.append((f"r{first}" if first == last else f"r{first}-r{last}", x[i], y[i]))
        start = i + 1
    return runs


def llm_plot(points: list[RoundPoint], path: Path) -> Path:
    """Per round: LLM-classifier agreement and the LLM's accuracy on its audited items."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    agree = [p for p in points if p.agreement is not None]
    right = [p for p in points if p.llm_right is not None]
    if not agree and not right:
        _empty(ax, "no LLM votes in this project (run with --llm to add one)")
    else:
        ax.plot([p.round for p in agree], [p.agreement for p in agree], "o-",
                color="tab:purple", label="LLM and classifier agree")  # fmt: skip
        ax.plot([p.round for p in right], [p.llm_right for p in right], "s--",
                color="tab:green", label="LLM right on audits")  # fmt: skip
        for p in right:
            ax.annotate(f"n={p.llm_audits}", (p.round, p.llm_right or 0), fontsize=7,
                        textcoords="offset points", xytext=(0, 6), ha="center", color="0.4")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("round")
        ax.set_ylabel("share of items")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    ax.set_title("The LLM per round: agreement with the classifier, accuracy on audits")
    return _save(fig, path)


def confusion_plot(confusion: Confusion, path: Path) -> Path:
    """Audited machine labels (columns) against people's answers (rows), with counts."""
    plt = _pyplot()
    k = len(confusion.labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * k + 3), max(4.2, 0.5 * k + 2.5)))
    counts = confusion.counts
    total = int(counts.sum())
    if total == 0:
        _empty(ax, "no audited machine labels yet")
        ax.set_title("Audited machine labels")
        return _save(fig, path)
    ax.imshow(counts, cmap="Blues")
    ticks = np.arange(k)
    ax.set_xticks(ticks, confusion.labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, confusion.labels, fontsize=8)
    top = counts.max()
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                color="white" if counts[i, j] > top / 2 else "black")  # fmt: skip
    ax.set_xlabel("machine label")
    ax.set_ylabel("person's answer")
    ax.set_title(f"Audited machine labels: {np.trace(counts)} of {total} right "
                 f"({np.trace(counts) / total:.0%})")  # fmt: skip
    return _save(fig, path)


def spend_plot(points: list[RoundPoint], spent: dict[str, Any], path: Path) -> Path:
    """Human labels and LLM calls spent in each round, with the totals in the title."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    llm = spent["llm"]
    title = (f"Spend: {spent['human_labels']} human labels, {int(llm['calls'])} paid LLM calls "
             f"(${llm['cost_usd']:.4f})")  # fmt: skip
    if not points:
        _empty(ax, "no rounds yet")
    else:
        rounds = np.array([p.round for p in points])
        humans = np.diff([0] + [p.human_labels for p in points])
        calls = np.diff([0] + [p.llm_calls for p in points])
        ax.bar(rounds - 0.2, humans, width=0.4, color="tab:orange", label="human labels")
        ax.bar(rounds + 0.2, calls, width=0.4, color="tab:blue", label="LLM calls")
        ax.set_xticks(rounds)
        ax.set_xlabel("round")
        ax.set_ylabel("in the round")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def label_plot(audit_f1: dict[str, Any] | None, level: float, path: Path) -> Path:
    """Each label's precision and recall on the audited sets, with their intervals at
    `level` (a multi-label project; `audit_f1` as `status --json` gives it)."""
    plt = _pyplot()
    per_label = (audit_f1 or {}).get("per_label") or {}
    names = list(per_label)
    fig, ax = plt.subplots(figsize=(7, max(4.2, 0.32 * len(names) + 1.5)))
    if not names:
        _empty(ax, "no audited sets yet")
    else:
        y = np.arange(len(names))
        for key, shift, colour in (("precision", -0.18, "tab:blue"),
                                   ("recall", 0.18, "tab:orange")):  # fmt: skip
            shown = [(i, per_label[n][key]) for i, n in enumerate(names) if per_label[n][key]]
            if not shown:
                continue
            at = np.array([i for i, _ in shown]) + shift
            value = np.array([f["value"] for _, f in shown])
            err = np.array([[f["value"] - f["low"] for _, f in shown],
                            [f["high"] - f["value"] for _, f in shown]])  # fmt: skip
            ax.errorbar(value, at, xerr=err, fmt="o", color=colour, capsize=2, label=key)
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()  # label-set order, top to bottom
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("share of audited sets")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="best")
    audits = (audit_f1 or {}).get("audits", 0)
    ax.set_title(f"Precision and recall per label on {audits} audited sets "
                 f"({level:.0%} intervals)", fontsize=10)  # fmt: skip
    return _save(fig, path)
