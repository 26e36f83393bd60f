"""Which label an item carries when several annotators gave one, and which sources are human.

Policy, kept out of the store: the store returns every standing label annotation and this
module picks, per item, the highest-ranked source, the newest on ties.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.store.protocol import ProjectStore
from agent.types import CurrentLabel, Source

# When several final labels exist for an item, the highest rank wins; ties go to the newest.
SOURCE_RANK = {
    Source.HUMAN.value: 4,
    Source.IMPORT.value: 4,
    Source.LLM.value: 2,
    Source.MODEL.value: 1,
    Source.ZEROSHOT.value: 0,
}
# Labels given by a person: a review now, or gold imported with the corpus.
HUMAN_SOURCES = (Source.HUMAN.value, Source.IMPORT.value)


def current_labels(
    store: ProjectStore, sources: Iterable[str] | None = None
) -> dict[int, CurrentLabel]:
    """Item key -> the label it carries now (highest source rank, then newest)."""
    best: dict[int, tuple[tuple[int, float, int], CurrentLabel]] = {}
    for current in store.label_annotations(sources):
        rank = (SOURCE_RANK.get(current.source, 0), current.created_at, current.annotation_id)
        if current.item_key not in best or rank > best[current.item_key][0]:
            best[current.item_key] = (rank, current)
    return {key: value for key, (_, value) in best.items()}


def counts_by_source(store: ProjectStore) -> dict[str, int]:
    """Items carrying a label (not None), per source of that label."""
    counts: dict[str, int] = {}
    for current in current_labels(store).values():
        if current.label is not None:
            counts[current.source] = counts.get(current.source, 0) + 1
    return counts
