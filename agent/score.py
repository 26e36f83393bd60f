"""`python -m agent.score EXPORT GOLD`: compare an export with a gold file (id,label)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def score(export: Path, gold: Path) -> dict[str, float]:
    """Accuracy of the exported labels against gold, over all items and over labelled ones."""
    with gold.open(encoding="utf-8", newline="") as handle:
        truth = {row["id"]: row["label"] for row in csv.DictReader(handle)}
    total = labelled = right = 0
    with export.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["id"] not in truth:
                continue
            total += 1
            if row["label"]:
                labelled += 1
                right += row["label"] == truth[row["id"]]
    return {
        "items": total,
        "labelled": labelled,
        "accuracy_of_labelled": right / labelled if labelled else 0.0,
        "corpus_accuracy": right / total if total else 0.0,
    }


def main() -> None:
    export, gold = map(Path, sys.argv[1:3])
    result = score(export, gold)
    summary = json.loads(Path(f"{export}.summary.json").read_text(encoding="utf-8"))
    estimate = summary.get("estimated_accuracy")
    print(
        f"true accuracy against gold: {result['corpus_accuracy']:.3f} over {result['items']} "
        f"items ({result['labelled']} labelled, "
        f"{result['accuracy_of_labelled']:.3f} of those right)"
    )
    if estimate:
        print(
            f"labelagent estimated: {estimate['value']:.3f} "
            f"[{estimate['low']:.3f}, {estimate['high']:.3f}]"
        )


if __name__ == "__main__":
    main()
