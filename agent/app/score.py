"""`python -m agent.app.score EXPORT GOLD`: compare an export with a gold file (id,label).

The corpus is scored the way the accuracy estimate counts it: each item's `final_label` (its
label, else the machines' best guess); the labelled part is scored on its own too.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def score(export: Path, gold: Path) -> dict[str, float]:
    """Accuracy against gold of the labels alone and of the final labels."""
    with gold.open(encoding="utf-8", newline="") as handle:
        truth = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    total = labelled = right_labelled = right_corpus = 0
    with export.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["id"] not in truth:
                continue
            total += 1
            answer = row["final_label"]
            right_corpus += answer == truth[row["id"]]
            if row["label"]:
                labelled += 1
                right_labelled += row["label"] == truth[row["id"]]
    return {
        "items": total,
        "labelled": labelled,
        "accuracy_of_labelled": right_labelled / labelled if labelled else 0.0,
        "corpus_accuracy": right_corpus / total if total else 0.0,
    }


def main() -> None:
    export, gold = map(Path, sys.argv[1:3])
    result = score(export, gold)
    summary = json.loads(Path(f"{export}.summary.json").read_text(encoding="utf-8"))
    print(
        f"true corpus accuracy against gold (final_label): "
        f"{result['corpus_accuracy']:.3f} over {result['items']} items; "
        f"{result['labelled']} labelled, {result['accuracy_of_labelled']:.3f} of those right"
    )
    estimate = summary.get("estimated_accuracy")
    if estimate:
        print(f"labelagent estimated: {estimate['value']:.3f} "
              f"[{estimate['low']:.3f}, {estimate['high']:.3f}]")


if __name__ == "__main__":
    main()
