"""Label-cost plots (PNG, matplotlib Agg): accuracy against human labels, one line per system.

Left panel: corpus accuracy (human labels + predictions for the rest) with the target as a
dashed line; right panel: the classifier's test accuracy. Curves are means over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first


def plot_result(result: dict[str, Any], path: Path, dpi: int = 90) -> Path:
    """Draw one `evals.run` result to `path` (PNG) and return the path."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for name, entry in result["systems"].items():
        curve = entry["curve"]
        h = [p[0] for p in curve]
        style = "o-" if len(curve) == 1 else "-"
        left.plot(h, [p[1] for p in curve], style, label=name, linewidth=1.4, markersize=4)
        right.plot(h, [p[2] for p in curve], style, label=name, linewidth=1.4, markersize=4)
    target = result["config"].get("target")
    if target is not None:
        left.axhline(target, color="grey", linestyle="--", linewidth=0.8)
    left.set_title("corpus accuracy (pool)")
    right.set_title("classifier test accuracy")
    for ax in (left, right):
        ax.set_xlabel("human labels")
        ax.grid(alpha=0.3)
    left.set_ylabel("accuracy")
    right.legend(loc="lower right", fontsize=8)
    cfg = result["config"]
    fig.suptitle(
        f"{result['dataset']}: pool {result['pool_size']}, {result['n_labels']} labels, "
        f"mean of {cfg['seeds']} seeds",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
