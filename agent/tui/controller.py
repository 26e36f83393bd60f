"""The review loop without the UI: lease ahead, record decisions, undo, and pace the operator.

ReviewApp renders what this returns and tests drive it directly. A decision is one human label
and its queue completion in one transaction (`agent.loop.record`), run on a background writer
(in order). The keypress waits for that commit (milliseconds) up to `save_wait` seconds, so a
decision is on disk when the next card shows; a write still queued after that (a busy
database) is counted in `ReviewStats.saving`, which the header shows until it lands. A review
of an item whose lease ran out and that another operator took is refused by the store
(LeaseError): the answer is dropped and said so (`refusals`). Quitting waits for every write.
Cards are leased a few at a time ahead of need, on the same writer thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, Protocol

from agent.config import ProjectConfig
from agent.errors import LeaseError
from agent.loop.record import HumanLabel, record_human_labels
from agent.store.protocol import ProjectStore
from agent.tui.cards import Card, make_card
from agent.tui.pace import Pace
from agent.tui.summary import SessionSummary, Tally
from agent.tui.writer import StoreWriter
from agent.types import Kind, Source

SAVE_WAIT_S = 2.0  # a keypress waits this long for its decision to commit, then shows "saving"
REFUSED = -1  # the annotation id of a decision the store refused (another operator's lease)


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
class Decision:
    """A human label (None = ambiguous / none fits) on its way to the store."""

    card: Card
    label: str | None
    duration_ms: int
    saved: Future[int]  # resolves to the annotation id once committed (REFUSED: not saved)
    note: str = ""

    @property
    def annotation_id(self) -> int:
        """The stored annotation's id; waits for the write if it is still queued."""
        return self.saved.result()


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
    saving: int = 0  # decisions handed to the writer and not yet committed


class ReviewController:
    """One operator's review of a project's queue; owned by one thread (the UI's)."""

    def __init__(
        self,
        store: ProjectStore,
        config: ProjectConfig,
        operator: str,
        *,
        prefetch: int = 2,
        undo_depth: int = 50,
        clock: Callable[[], float] = time.monotonic,
        save_wait: float = SAVE_WAIT_S,
    ) -> None:
        self.store, self.config, self.operator = store, config, operator
        self.prefetch, self._clock, self.save_wait = prefetch, clock, save_wait
        self._saving: deque[Future[int]] = deque()
        self._refusals: deque[str] = deque()  # appended on the writer thread
        self.current: Card | None = None
        self._ahead: deque[Card] = deque()
        self._leasing: Future[tuple[list[Card], bool]] | None = None
        self._undo: deque[Decision] = deque(maxlen=undo_depth)
        self._writer = StoreWriter()
        self._exhausted = False
        self._started = False
        self._done = self._agreed = self._suggested = 0
        self.tally = Tally()  # what this session saved, for the summary at quit
        self.refused = 0
        self.undone: Decision | None = None  # the decision the latest undo took back
        self._late: list[Decision] = []
        self._remaining = 0
        self._since_refresh = 0
        self.accuracy: dict[str, float] | None = None
        self.pace = Pace(config.break_after_minutes * 60.0, self._history_ms(), clock)

    # ---- queue -------------------------------------------------------------------------------
    def start(self) -> Card | None:
        """Poll the counts, lease cards and show the most valuable one unless a card is shown.

        Also the way back from an empty queue: call it again when `poll` finds new items.
        The first start gives back leases this operator still holds from an earlier session
        (one that died), so they wait neither for their expiry nor on a dead terminal.
        """
        if not self._started:
            self._started = True
            self._writer.submit(self.store.release_operator, self.operator)
        self.poll()
        self.top_up()
        return self._advance() if self.current is None else self.current

    def poll(self) -> None:
        """Re-read the queue size and accuracy estimate (a few ms at 100k: call on a timer)."""
        self._writer.check()
        self._remaining = self.store.queue_size()
        self.accuracy = self.store.get_meta("estimated_accuracy")
        self._exhausted = False

    def top_up(self, wait: bool = False) -> None:
        """Lease cards in the background until `prefetch` wait behind the current one."""
        self._collect(wait=False)
        need = self.prefetch - len(self._ahead)
        if need > 0 and not self._exhausted and self._leasing is None:
            self._leasing = self._writer.submit(self._lease, self.held_keys(), need)
        self._collect(wait)

    def _lease(self, held: set[int], need: int) -> tuple[list[Card], bool]:
        """On the writer thread: lease `need` items beyond `held`; (their cards, queue ran dry)."""
        # lease() also returns items this operator already holds; ask for enough to see past them.
        entries = self.store.lease(self.operator, len(held) + need, self.config.lease_seconds)
        fresh = [e for e in entries if e.item_key not in held]
        items = self.store.items([e.item_key for e in fresh])
        now = self._clock()
        cards = [make_card(self.store, e, item, now) for e, item in zip(fresh, items)]
        return cards, len(fresh) < need

    def _collect(self, wait: bool) -> None:
        """Take the cards of a finished background lease (or wait for it)."""
        if self._leasing is not None and (wait or self._leasing.done()):
            leasing, self._leasing = self._leasing, None
            cards, self._exhausted = leasing.result()
            self._ahead.extend(cards)

    def held_keys(self) -> set[int]:
        """Keys this controller holds a lease on: the current card and those leased ahead."""
        self._collect(wait=True)
        keys = {card.key for card in self._ahead}
        if self.current is not None:
            keys.add(self.current.key)
        return keys

    def renew_leases(self) -> int:
        """Renew every held lease older than a third of its term; returns how many."""
        if self._writer.closed:
            return 0
        term = self.config.lease_seconds
        now = self._clock()
        cards = [*self._ahead, *([self.current] if self.current else [])]
        stale = [card for card in cards if now - card.leased_at >= term / 3]
        for card in stale:
            self._writer.submit(self.store.renew, card.key, self.operator, term)
            card.leased_at = now
        return len(stale)

    def _advance(self) -> Card | None:
        self._collect(wait=not self._ahead)
        if not self._ahead and not self._exhausted:
            self.top_up(wait=True)
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
        """Queue the human label and the queue completion, then show the next card."""
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
        answer = HumanLabel(card.key, label, card.entry.round, duration_ms, meta)
        saving = self._writer.submit(self._save, answer)
        decision = Decision(card, label, duration_ms, saving, card.note)
        self._saving.append(decision.saved)
        wait([decision.saved], timeout=self.save_wait)  # on disk before the next card shows
        saved = decision.saved
        if not (saved.done() and saved.exception() is None and saved.result() == REFUSED):
            self._undo.append(decision)
            self._count(decision, +1)
            if not saved.done():
                self._late.append(decision)  # counted as saved; the store may still refuse it
        card.earlier = ""  # decided again: the undone answer is history
        self._advance()
        return decision

    def _save(self, answer: HumanLabel) -> int:
        """On the writer thread: the label and this review done, in one transaction; REFUSED
        (nothing written, the reason in `refusals`) when another operator holds the item."""
        try:
            [annotation_id] = record_human_labels(self.store, [answer], self.operator)
        except LeaseError as exc:
            self._refusals.append(str(exc))
            self.refused += 1  # one int write on the writer thread; read after close
            return REFUSED
        return annotation_id

    @property
    def saving(self) -> int:
        """Decisions handed to the writer that have not committed yet."""
        while self._saving and self._saving[0].done():
            self._saving.popleft()
        return sum(not f.done() for f in self._saving)

    def refusals(self) -> list[str]:
        """Why decisions were refused since the last call (each said once)."""
        said = []
        while self._refusals:
            said.append(self._refusals.popleft())
        return said

    def skip(self) -> Card | None:
        """Give the current card back behind every item this operator has not skipped (kept in
        the store, so it stays there after quitting) and show the next one.

        Returns the skipped card (None when there was none).
        """
        skipped = self.current
        if skipped is None:
            return None
        self._writer.submit(self.store.skip, skipped.key, self.operator)
        self.current = None
        self._advance()
        return skipped

    def undo(self) -> Card | None:
        """Retract the latest decision and show its card again, with the answer taken back in
        `earlier`; None when nothing is left to undo. `undone` keeps that decision (to say it).

        The current card waits, still leased, in front of the cards leased ahead.
        """
        while self._undo and self._undo[-1].annotation_id == REFUSED:  # waits for the write
            refused = self._undo.pop()
            self._count(refused, -1)  # never saved: nothing to take back
            self._late = [d for d in self._late if d is not refused]
        if not self._undo:
            return None
        decision = self._undo.pop()
        annotation_id = decision.annotation_id
        self._writer.submit(self._unsave, annotation_id, decision.card.key)
        self._count(decision, -1)
        if self.current is not None:
            self._ahead.appendleft(self.current)
        self.current, self.undone = decision.card, decision
        self.current.earlier = "none fits" if decision.label is None else decision.label
        self.current.shown_at = self.current.leased_at = self._clock()
        return self.current

    def _unsave(self, annotation_id: int, item_key: int) -> None:
        self.store.retract(annotation_id, self.operator)
        self.store.reopen(item_key, self.operator, self.config.lease_seconds)

    def set_note(self, text: str) -> None:
        """Attach a free-text note to the current card's coming decision."""
        if self.current is not None:
            self.current.note = text.strip()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def _count(self, decision: Decision, sign: int) -> None:
        self._done += sign
        self.tally.add(decision.label, decision.note, sign)
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
        self._collect(wait=True)
        while self._ahead:
            self._writer.submit(self.store.release, self._ahead.pop().key, self.operator)
        self.flush()
        self.poll()
        self.top_up()

    def flush(self) -> None:
        """Wait until every decision and lease change so far is committed."""
        self._writer.flush()

    def close(self) -> None:
        """Release every held lease and wait for every write; safe to call twice."""
        if self._writer.closed:
            return
        for key in self.held_keys():
            self._writer.submit(self.store.release, key, self.operator)
        self._ahead.clear()
        self.current = None
        self._writer.close()

    def summary(self) -> SessionSummary:
        """What this session saved and what is left; reads the store, so call it after `close`
        and before the store closes."""
        self.flush()
        tally = self.tally.copy()
        for decision in self._late:  # written after its keypress, then refused: not saved
            if decision.saved.result() == REFUSED:
                tally.add(decision.label, decision.note, -1)
        return tally.summary(
            skipped=len(self.store.skipped(self.operator)),
            waiting=self.store.queue_size(),
            refused=self.refused,
        )

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
            saving=self.saving,
        )

    def _history_ms(self) -> list[int]:
        """This operator's earlier times per item (ms), the baseline for slow-down."""
        rows = self.store.annotations(source=Source.HUMAN.value, kind=Kind.LABEL.value)
        return [int(r["duration_ms"]) for r in rows
                if r["actor"] == self.operator and r["duration_ms"] is not None]
