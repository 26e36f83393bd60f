"""ReviewApp: the operator's keyboard-first view of the review queue (thin; logic in controller).

Run by hand with `python -m agent.tui.app PROJECT --operator NAME`. Decisions are written before
the next card shows; retraining and neighbour look-ups run in worker threads, never blocking keys.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from agent.config import ProjectConfig
from agent.store.opening import open_store
from agent.store.protocol import ProjectStore
from agent.tui.controller import Card, ReviewController, ReviewServices
from agent.tui.screens import HelpScreen, LabelSearch, NoteDialog
from agent.tui.summary import summary_line
from agent.tui.texts import undo_message
from agent.tui.widgets import CandidateList, CardView, NeighboursView, StatsBar

NEIGHBOURS_K = 5
POLL_SECONDS = 10.0  # queue size and accuracy estimate (other operators change them too)
SAVES_SECONDS = 0.25  # how often the header looks whether a pending write has landed


class ReviewApp(App[None]):
    """Review one project's queue as `operator`; `services` adds retraining and neighbours."""

    CSS_PATH = Path(__file__).with_name("review.tcss")
    TITLE = "labelagent review"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "accept", "Accept ★"),
        Binding("1", "pick(1)", "Pick", key_display="1-9"),
        *(Binding(str(n), f"pick({n})", f"Pick {n}", show=False) for n in range(2, 10)),
        Binding("slash", "search", "Search"),
        Binding("x", "ambiguous", "None fits"),
        Binding("s", "skip", "Skip"),
        Binding("u", "undo", "Undo"),
        Binding("n", "note", "Note"),
        Binding("k", "neighbours", "Neighbours"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_review", "Quit"),
    ]

    def __init__(
        self,
        store: ProjectStore,
        config: ProjectConfig,
        operator: str,
        services: ReviewServices | None = None,
        *,
        prefetch: int = 2,
    ) -> None:
        super().__init__()
        self.controller = ReviewController(store, config, operator, prefetch=prefetch)
        self.services = services
        self.retraining = False
        self.neighbours_on = False
        self.latencies_ms: deque[float] = deque(maxlen=10_000)  # action -> card painted
        self.painted = asyncio.Event()  # set each time a new card has been painted
        self._break_told = False
        self._saving_shown = 0  # decisions not yet written, as the header shows them

    def compose(self) -> ComposeResult:
        yield StatsBar(id="stats")
        names = self.controller.store.label_set.names
        yield CardView(min(48, max((len(n) for n in names), default=10)), id="card")
        yield NeighboursView(id="neighbours")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#neighbours", NeighboursView).display = False
        self.controller.start()
        self._show(time.perf_counter())
        self.set_interval(POLL_SECONDS, self._poll)
        renew_every = max(1.0, self.controller.config.lease_seconds / 6)
        self.set_interval(renew_every, self.controller.renew_leases)
        self.set_interval(SAVES_SECONDS, self._watch_saves)

    # ---- rendering ---------------------------------------------------------------------------
    def _show(self, started: float) -> None:
        """Render the current card and header; time it until the screen has been painted."""
        card = self.controller.current
        self.query_one(CardView).show(card)
        self._show_stats()
        if self.neighbours_on:
            self._request_neighbours(card)
        self.call_after_refresh(self._painted, started)

    def _painted(self, started: float) -> None:
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.painted.set()
        self.controller.top_up()  # lease ahead after the paint, off the keypress path

    def _show_stats(self) -> None:
        stats = self.controller.stats()
        self._saving_shown = stats.saving
        self.query_one(StatsBar).show(stats, self.retraining)
        if stats.break_due and not self._break_told:
            self.notify(f"{stats.minutes_working:.0f} minutes of review: time for a short break.",
                        title="Break", timeout=15)
        self._break_told = stats.break_due

    def _watch_saves(self) -> None:
        """Clear "saving" once a slow write landed; say so when the store refused one."""
        for refusal in self.controller.refusals():
            self.notify(refusal, title="Not saved", severity="error", timeout=15)
        if self._saving_shown != self.controller.saving and self.query(StatsBar):
            self._show_stats()

    def _poll(self) -> None:
        was_empty = self.controller.current is None
        self.controller.start()  # re-reads counts; leases again if the queue had run dry
        if was_empty and self.controller.current is not None:
            self._show(time.perf_counter())
        else:
            self._show_stats()

    # ---- decisions ---------------------------------------------------------------------------
    def _act(self, step: Callable[[], object], refusal: str, needs_card: bool = True) -> None:
        """Run one controller step; re-render, or say why nothing happened."""
        started = time.perf_counter()
        if needs_card and self.controller.current is None:
            self.notify("The queue is empty.", severity="warning")
            return
        if step() is None:
            self.notify(refusal, severity="warning")
            return
        self._show(started)
        self._maybe_retrain()

    def action_accept(self) -> None:
        self._act(self.controller.accept, "No suggestion on this card: pick 1-9 or search (/).")

    def action_pick(self, number: int) -> None:
        self._act(lambda: self.controller.pick(number), f"There is no candidate {number}.")

    def action_ambiguous(self) -> None:
        self._act(self.controller.ambiguous, "")

    def action_skip(self) -> None:
        self._act(self.controller.skip, "")

    def action_undo(self) -> None:
        self._act(self._undo, "Nothing to undo.", needs_card=False)

    def _undo(self) -> Card | None:
        """Undo, and say what was undone (the card shows it too, until decided again)."""
        card = self.controller.undo()
        undone = self.controller.undone
        if card is not None and undone is not None:
            self.notify(undo_message(undone.label, card.key, card.best), title="Undo")
        return card

    def on_candidate_list_chosen(self, message: CandidateList.Chosen) -> None:
        self.action_pick(message.number)

    def action_search(self) -> None:
        card = self.controller.current
        if card is None:
            return
        first = [c.label for c in card.candidates]
        self.push_screen(LabelSearch(self.controller.store.label_set.names, first), self._searched)

    def _searched(self, label: str | None) -> None:
        if label is not None:
            self._act(lambda: self.controller.decide(label), "")

    def action_note(self) -> None:
        card = self.controller.current
        if card is not None:
            self.push_screen(NoteDialog(card.note), self._noted)

    def _noted(self, note: str | None) -> None:
        if note is not None:
            self.controller.set_note(note)
            self.query_one(CardView).show_note(self.controller.current)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit_review(self) -> None:
        """Give back the held leases and leave; every decision is already in the store."""
        self.controller.close()
        self.exit()

    def on_unmount(self) -> None:
        """However the app ends (q, Ctrl+Q, an error), wait for the writes and free the leases."""
        self.controller.close()

    # ---- workers -----------------------------------------------------------------------------
    def _maybe_retrain(self) -> None:
        if self.services is None or self.retraining or not self.controller.refresh_due:
            return
        self.controller.refresh_started()
        self.retraining = True
        self._show_stats()
        self._retrain(self.services)

    @work(thread=True, exclusive=True, group="retrain", exit_on_error=False)
    def _retrain(self, services: ReviewServices) -> None:
        services.refresh()

    def action_neighbours(self) -> None:
        self.neighbours_on = not self.neighbours_on
        view = self.query_one("#neighbours", NeighboursView)
        view.display = self.neighbours_on
        if self.neighbours_on:
            self._request_neighbours(self.controller.current)

    def _request_neighbours(self, card: Card | None) -> None:
        view = self.query_one("#neighbours", NeighboursView)
        if self.services is None:
            view.show_unavailable()
        elif card is not None:
            view.show_loading()
            self._neighbours(self.services, card.key)

    @work(thread=True, exclusive=True, group="neighbours", exit_on_error=False)
    def _neighbours(
        self, services: ReviewServices, item_key: int
    ) -> tuple[int, list[tuple[str, str, float]]]:
        return item_key, services.neighbours(item_key, NEIGHBOURS_K)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Results of the worker threads arrive here, on the UI thread."""
        worker, state = event.worker, event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if worker.group == "retrain":
            self.retraining = False
            if state == WorkerState.SUCCESS:
                self.controller.after_refresh()
            elif state == WorkerState.ERROR:
                self.notify(f"Retraining failed: {worker.error}", severity="error")
            self._show_stats()
        elif worker.group == "neighbours" and state == WorkerState.SUCCESS and worker.result:
            key, rows = worker.result
            current = self.controller.current
            if self.neighbours_on and current is not None and current.key == key:
                self.query_one("#neighbours", NeighboursView).show_neighbours(rows)
        elif worker.group == "neighbours" and state == WorkerState.ERROR:
            self.query_one("#neighbours", NeighboursView).show_text(
                f"Neighbours: failed ({worker.error})")


def main(argv: list[str] | None = None) -> None:
    """`python -m agent.tui.app PROJECT [--operator NAME]` (until `labelagent review` exists)."""
    parser = argparse.ArgumentParser(description="Review a labelagent project's queue.")
    parser.add_argument("project", type=Path)
    parser.add_argument("--operator", default=getpass.getuser())
    args = parser.parse_args(argv)
    store = open_store(args.project)
    app = ReviewApp(store, ProjectConfig.load(args.project), args.operator)
    try:
        app.run()
        app.controller.close()  # idempotent: also when the app ended another way
        print(summary_line(app.controller.summary()))
    finally:
        app.controller.close()
        store.close()


if __name__ == "__main__":
    main()
