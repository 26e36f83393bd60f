"""Label-cost plots (PNG, matplotlib Agg): accuracy against human labels, one line per system.

Left panel: corpus accuracy (human labels + predictions for the rest) with the target as a
dashed line; right panel: the classifier's test accuracy. Curves are means over seeds; a
system that uses no human labels (one point) is drawn as a dotted level across the panel.

    python -m evals.plots RESULT.json OUT.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first


def plot_result(result: dict[str, Any], path: Path, dpi: int = 90) -> Path:
    """Draw one `evals.run` result to `path` (PNG) and return the path."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    right_end = max(p[0] for e in result["systems"].values() for p in e["curve"])
    for name, entry in result["systems"].items():
        curve = entry["curve"]
        h = [p[0] for p in curve]
        style = "-"
        if len(curve) == 1:  # no human labels: a level, marked where it was measured
            h, curve, style = [h[0], max(right_end, h[0])], [curve[0]] * 2, "o:"
        for ax, column in ((left, 1), (right, 2)):
            ax.plot(h, [p[column] for p in curve], style, label=name, linewidth=1.4,
                    markersize=4, markevery=[0])
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


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m evals.plots RESULT.json OUT.png")
    data = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(plot_result(data, Path(sys.argv[2])))
