"""The review loop without the UI: lease ahead, record decisions, undo, and pace the operator.

ReviewApp renders what this returns and tests drive it directly. A decision is one appended human
annotation plus `complete` on the queue, both written before the next card shows, so quitting or
a crash never loses a decision already made. Cards are leased a few at a time ahead of need, so
a keypress costs two small writes and no query over the whole queue.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.config import ProjectConfig
from agent.review_queue import QueueEntry
from agent.store import Store
from agent.tui.pace import Pace
from agent.types import Annotation, Item, Kind, LabelSet, Source

MAX_CANDIDATES = 9  # keys 1-9


class ReviewServices(Protocol):
    """What the session lends the review app; both calls run in a worker thread, never the UI's."""

    def refresh(self) -> None:
        """Retrain on the new human labels and rewrite queue priorities and suggestions (slow).

        Write the queue in short transactions: the operator's decisions wait for SQLite's lock.
        """
        ...

    def neighbours(self, item_key: int, k: int) -> list[tuple[str, str, float]]:
        """The k nearest labelled items to `item_key` as (text, label, similarity), best first."""
        ...


@dataclass(frozen=True)
class Candidate:
    """A label the operator can pick by number, with the machines' support for it."""

    label: str
    llm_confidence: float | None  # set when this is the LLM's label
    probability: float | None  # set when the classifier ranks it in its top 3
    suggested: bool  # the `best` suggestion that Enter accepts


def candidates(
    suggestion: Mapping[str, Any], labels: LabelSet, limit: int = MAX_CANDIDATES
) -> tuple[Candidate, ...]:
    """Best suggestion, then the LLM's label, then the classifier's top labels; known, unique."""
    llm = suggestion.get("llm") or {}
    llm_label = llm.get("label")
    probs = {str(name): float(p) for name, p in suggestion.get("classifier") or []}
    best = suggestion.get("best")
    order: list[str] = []
    for name in (best, llm_label, *probs):
        if name and name in labels and name not in order:
            order.append(name)
    return tuple(
        Candidate(
            name,
            float(llm.get("confidence", 0.0)) if name == llm_label else None,
            probs.get(name),
            name == best,
        )
        for name in order[:limit]
    )


@dataclass
class Card:
    """One leased queue entry with its item, as shown to the operator."""

    entry: QueueEntry
    item: Item
    candidates: tuple[Candidate, ...]
    note: str = ""
    shown_at: float = 0.0  # controller clock when it became the current card
    leased_at: float = 0.0  # controller clock of the last lease or renewal

    @property
    def key(self) -> int:
        return self.entry.item_key

    @property
    def best(self) -> str | None:
        best = self.entry.suggestion.get("best")
        return str(best) if best else None


@dataclass(frozen=True)
class Decision:
    """A saved human label (None = ambiguous / none fits) and what undoing it needs."""

    card: Card
    label: str | None
    annotation_id: int
    duration_ms: int


@dataclass(frozen=True)
class ReviewStats:
    """What the header shows; recomputed after each decision (cheap: no store query)."""

    operator: str
    done: int
    remaining: int
    per_minute: float | None
    agreement: float | None  # share of decisions equal to the suggestion
    accuracy: dict[str, float] | None  # store meta "estimated_accuracy": value, low, high
    slow_ratio: float | None  # recent time per item / the operator's median
    break_due: bool
    minutes_working: float


class ReviewController:
    """One operator's review of a project's queue; not thread-safe (the UI thread owns it)."""

    def __init__(
        self,
        store: Store,
        config: ProjectConfig,
        operator: str,
        *,
        prefetch: int = 4,
        undo_depth: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.config, self.operator = store, config, operator
        self.prefetch, self._clock = prefetch, clock
        self.current: Card | None = None
        self._ahead: deque[Card] = deque()
        self._undo: deque[Decision] = deque(maxlen=undo_depth)
        self._exhausted = False
        self._done = self._agreed = self._suggested = 0
        self._remaining = 0
        self._since_refresh = 0
        self.accuracy: dict[str, float] | None = None
        self.pace = Pace(config.break_after_minutes * 60.0, self._history_ms(), clock)

    # ---- queue -------------------------------------------------------------------------------
    def start(self) -> Card | None:
        """Poll the counts, lease the first cards and show the most valuable one."""
        self.poll()
        self.top_up()
        return self._advance()

    def poll(self) -> None:
        """Re-read the queue size and accuracy estimate (a few ms at 100k: call on a timer)."""
        self._remaining = self.store.queue_size()
        self.accuracy = self.store.get_meta("estimated_accuracy")
        self._exhausted = False

    def top_up(self) -> int:
        """Lease cards until `prefetch` wait behind the current one; returns how many were added."""
        need = self.prefetch - len(self._ahead)
        if need <= 0 or self._exhausted:
            return 0
        held = self.held_keys()
        # lease() also returns items this operator already holds; ask for enough to see past them.
        entries = self.store.lease(self.operator, len(held) + need, self.config.lease_seconds)
        fresh = [e for e in entries if e.item_key not in held]
        self._exhausted = len(fresh) < need
        now = self._clock()
        items = self.store.items([e.item_key for e in fresh])
        labels = self.store.label_set
        for entry, item in zip(fresh, items):
            cards = candidates(entry.suggestion, labels)
            self._ahead.append(Card(entry, item, cards, leased_at=now))
        return len(fresh)

    def held_keys(self) -> set[int]:
        """Keys this controller holds a lease on: the current card and those leased ahead."""
        keys = {card.key for card in self._ahead}
        if self.current is not None:
            keys.add(self.current.key)
        return keys

    def renew_leases(self) -> int:
        """Renew every held lease older than a third of its term; returns how many."""
        term = self.config.lease_seconds
        now = self._clock()
        renewed = 0
        for card in [*self._ahead, *([self.current] if self.current else [])]:
            if now - card.leased_at >= term / 3:
                self.store.renew(card.key, self.operator, term)
                card.leased_at = now
                renewed += 1
        return renewed

    def _advance(self) -> Card | None:
        if not self._ahead:
            self.top_up()
        self.current = self._ahead.popleft() if self._ahead else None
        if self.current is not None:
            self.current.shown_at = self._clock()
        return self.current

    # ---- decisions ---------------------------------------------------------------------------
    def accept(self) -> Decision | None:
        """Save the suggested label; None when the card has no suggestion (or there is no card)."""
        if self.current is None or self.current.best is None:
            return None
        return self.decide(self.current.best)

    def pick(self, number: int) -> Decision | None:
        """Save candidate `number` (1-based, as on screen); None when there is no such number."""
        if self.current is None or not 1 <= number <= len(self.current.candidates):
            return None
        return self.decide(self.current.candidates[number - 1].label)

    def ambiguous(self) -> Decision | None:
        """Save "no label fits / ambiguous" (label None, flagged) for the current card."""
        return self.decide(None, flag="ambiguous")

    def decide(self, label: str | None, flag: str | None = None) -> Decision | None:
        """Append the human label, complete the queue entry and show the next card."""
        card = self.current
        if card is None:
            return None
        if label is not None and label not in self.store.label_set:
            raise ValueError(f"'{label}' is not in the project's label set")
        duration_ms = max(0, round((self._clock() - card.shown_at) * 1000))
        meta: dict[str, Any] = {"reason": card.entry.reason, "suggested": card.best}
        if card.note:
            meta["note"] = card.note
        if flag:
            meta["flag"] = flag
        annotation = Annotation(
            card.key, label, Source.HUMAN, Kind.LABEL, actor=self.operator,
            round=card.entry.round, duration_ms=duration_ms, meta=meta,
        )
        [annotation_id] = self.store.add_annotations([annotation])
        self.store.complete(card.key, self.operator)
        decision = Decision(card, label, annotation_id, duration_ms)
        self._undo.append(decision)
        self._count(decision, +1)
        self._advance()
        return decision

    def skip(self) -> Card | None:
        """Give the current card back behind every other pending item; show the next one."""
        if self.current is None:
            return None
        self.store.release(self.current.key, self.operator, demote=True)
        self.current = None
        return self._advance()

    def undo(self) -> Card | None:
        """Retract the latest decision and show its card again; None when nothing is left to undo.

        The current card waits, still leased, in front of the cards leased ahead.
        """
        if not self._undo:
            return None
        decision = self._undo.pop()
        self.store.retract(decision.annotation_id, self.operator)
        self.store.reopen(decision.card.key)
        self._count(decision, -1)
        if self.current is not None:
            self._ahead.appendleft(self.current)
        self.current = decision.card
        self.current.shown_at = self.current.leased_at = self._clock()
        return self.current

    def set_note(self, text: str) -> None:
        """Attach a free-text note to the current card's coming decision."""
        if self.current is not None:
            self.current.note = text.strip()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def _count(self, decision: Decision, sign: int) -> None:
        self._done += sign
        self._remaining -= sign
        self._since_refresh += sign
        if decision.card.best is not None:
            self._suggested += sign
            self._agreed += sign * (decision.label == decision.card.best)
        if sign > 0:
            self.pace.record(decision.duration_ms)
        else:
            self.pace.forget_last()

    # ---- retraining and the end --------------------------------------------------------------
    @property
    def refresh_due(self) -> bool:
        """True once `retrain_every` decisions were made since the last retraining began."""
        return self._since_refresh >= self.config.retrain_every

    def refresh_started(self) -> None:
        self._since_refresh = 0

    def after_refresh(self) -> None:
        """Give back the cards leased ahead (their suggestions are stale) and lease afresh."""
        while self._ahead:
            self.store.release(self._ahead.pop().key, self.operator)
        self.poll()
        self.top_up()

    def close(self) -> None:
        """Release every held lease; every decision is already saved."""
        for key in self.held_keys():
            self.store.release(key, self.operator)
        self._ahead.clear()
        self.current = None

    def stats(self) -> ReviewStats:
        """Header figures from counters kept in memory."""
        return ReviewStats(
            operator=self.operator,
            done=self._done,
            remaining=max(self._remaining, 0),
            per_minute=self.pace.per_minute(),
            agreement=self._agreed / self._suggested if self._suggested else None,
            accuracy=self.accuracy,
            slow_ratio=self.pace.slow_ratio(),
            break_due=self.pace.break_due(),
            minutes_working=self.pace.minutes_working(),
        )

    def _history_ms(self) -> list[int]:
        """This operator's earlier times per item (ms), the baseline for slow-down."""
        rows = self.store.annotations(source=Source.HUMAN.value, kind=Kind.LABEL.value)
        return [int(r["duration_ms"]) for r in rows
                if r["actor"] == self.operator and r["duration_ms"] is not None]
