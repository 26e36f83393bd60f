"""What one review session saved and what it leaves, said when the operator quits."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SessionSummary:
    """Counts at quit: answers saved this session (net of undo), of which `none_fits` said no
    label fits and `notes` carried a note; `skipped` pending items this operator skipped;
    `waiting` pending items in the queue (all operators'); `refused` answers the store refused
    (another operator held the item)."""

    saved: int
    none_fits: int
    notes: int
    skipped: int
    waiting: int
    refused: int = 0


@dataclass
class Tally:
    """Running counts of this session's answers; an undo takes its answer back out."""

    saved: int = 0
    none_fits: int = 0
    notes: int = 0

    def add(self, label: str | None, note: str, sign: int) -> None:
        self.saved += sign
        self.none_fits += sign * (label is None)
        self.notes += sign * bool(note)

    def copy(self) -> Tally:
        return replace(self)

    def summary(self, skipped: int, waiting: int, refused: int = 0) -> SessionSummary:
        return SessionSummary(self.saved, self.none_fits, self.notes, skipped, waiting, refused)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def summary_line(s: SessionSummary) -> str:
    """`saved 12 labels (2 none fits, 1 with a note) this session; 3 skipped by you; 140 wait
    for review`."""
    details = [f"{s.none_fits:,} none fits"] if s.none_fits else []
    if s.notes:
        details.append(f"{s.notes:,} with a note")
    saved = f"saved {_count(s.saved, 'label')}"
    if details:
        saved += f" ({', '.join(details)})"
    parts = [f"{saved} this session"]
    if s.refused:
        parts.append(f"{_count(s.refused, 'answer')} not saved (another operator had the item)")
    if s.skipped:
        parts.append(f"{s.skipped:,} skipped by you (they come back after the rest)")
    parts.append(f"{s.waiting:,} wait for review" if s.waiting else "nothing waits for review")
    return "; ".join(parts)
