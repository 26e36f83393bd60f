"""Inter-annotator agreement: Cohen's kappa over items that two human operators both labelled.

Overlap items (queue entries with `reviews_needed` > 1) are shown to several operators; the
agreement between them says how hard the task is and caps the accuracy a single human reaches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

NONE_FITS = "<none>"  # "ambiguous / none fits" is a category of its own for agreement


class HumanLabels(Protocol):
    """What agreement needs from a store: its non-retracted annotation rows."""

    def annotations(
        self, *, source: str | None = None, kind: str | None = None, item_key: int | None = None
    ) -> list[dict[str, Any]]: ...


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' labels (n,) and (n,); None where it is undefined.

    Undefined means no items, or chance agreement of 1 (both raters always used one same label).
    """
    if len(first) != len(second):
        raise ValueError(f"rater label lists differ in length: {len(first)} != {len(second)}")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    counts_first, counts_second = Counter(first), Counter(second)
    expected = sum(counts_first[c] * counts_second[c] for c in counts_first) / (n * n)
    if expected >= 1.0 - 1e-12:
        return None
    return (observed - expected) / (1.0 - expected)


def overlap_pairs(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(label of the first operator, label of the second) for each item two operators labelled.

    Rows are human label annotations, oldest first. An operator's latest label of an item counts;
    the two operators who first labelled the item form its pair; None becomes NONE_FITS.
    """
    by_item: dict[int, dict[str, str]] = {}
    for row in rows:
        labels = by_item.setdefault(int(row["item_key"]), {})
        actor = str(row["actor"])
        label = NONE_FITS if row["label"] is None else str(row["label"])
        labels[actor] = label  # a later decision replaces the earlier; first-seen order stays
    pairs: list[tuple[str, str]] = []
    for key in sorted(by_item):
        ordered = list(by_item[key].values())
        if len(ordered) >= 2:
            pairs.append((ordered[0], ordered[1]))
    return pairs


def agreement_summary(store: HumanLabels) -> dict[str, Any]:
    """{"kappa": float|None, "observed": float|None, "items": overlap item count} for `status`."""
    pairs = overlap_pairs(store.annotations(source="human", kind="label"))
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    kappa = cohen_kappa(first, second)
    observed = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
    return {
        "kappa": None if kappa is None else round(kappa, 4),
        "observed": None if observed is None else round(observed, 4),
        "items": len(pairs),
    }
