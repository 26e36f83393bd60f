"""The review screen of a multi-label project: the text, then every label with a box. The
proposed set comes ticked, each label marked with its source and score (LLM, classifier) and,
where the machines were in doubt, why. Space toggles the label under the cursor, `/` finds a
label by a few typed letters (the single-label screen's fuzzy search) and toggles it, Enter
confirms the set (one transaction: the person's set and the queue entry done), `u` undoes the
last toggle, `s` skips, `q` quits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import Footer, Static

from agent.config import ProjectConfig
from agent.labeller.set_scores import METHOD_WORDS
from agent.store.protocol import ProjectStore
from agent.tui.screens import LabelSearch
from agent.types import Annotation, Kind, QueueEntry, Source, encode_label_set


class SetReviewApp(App[None]):
    """One item at a time from the project's queue, leased to `operator`."""

    CSS_PATH = Path(__file__).with_name("review.tcss")  # the search dialog's styles
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "up"),
        Binding("down,j", "move(1)", "down"),
        Binding("space", "flip", "toggle label"),
        Binding("slash", "search", "find label"),
        Binding("enter", "confirm", "confirm set"),
        Binding("u", "undo", "undo toggle"),
        Binding("s", "skip", "skip"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, store: ProjectStore, config: ProjectConfig, operator: str) -> None:
        super().__init__()
        self.store, self.config, self.operator = store, config, operator
        self.names = store.label_set.names
        self.entry: QueueEntry | None = None
        self.chosen: set[str] = set()
        self.history: list[set[str]] = []
        self.cursor = 0
        self.saved = 0
        self.text = ""  # the current item's text
        self.waiting = 0  # pending items when it was leased
        self.message = ""

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="text")
        yield Static(id="scores-note")
        with VerticalScroll(id="labels-box"):
            yield Static(id="labels")
        yield Static(id="message")
        yield Footer()

    def on_mount(self) -> None:
        self._next()

    # ---- actions -------------------------------------------------------------------------
    def action_move(self, step: int) -> None:
        self.cursor = (self.cursor + step) % len(self.names)
        self._render()

    def action_flip(self) -> None:
        if self.entry is None:
            return
        self.history.append(set(self.chosen))
        self.chosen ^= {self.names[self.cursor]}
        self.message = ""
        self._render()

    def action_search(self) -> None:
        """Find a label by typing (a set among 28 labels needs no scrolling): the labels in
        doubt and the proposed ones are listed first; the pick is toggled."""
        if self.entry is None:
            return
        doubt = list(self.entry.suggestion.get("doubt", {}))
        first = doubt + [n for n in self.entry.suggestion.get("labels", []) if n not in doubt]
        self.push_screen(LabelSearch(self.names, first), self._found)

    def _found(self, name: str | None) -> None:
        if name is None or self.entry is None:
            return
        self.cursor = self.names.index(name)
        self.action_flip()
        self.message = f"{'ticked' if name in self.chosen else 'unticked'} {name}"
        self._render()

    def action_undo(self) -> None:
        if self.history:
            self.chosen = self.history.pop()
            self.message = "undid the last toggle"
            self._render()

    def action_confirm(self) -> None:
        if self.entry is None:
            return
        if not self.chosen:
            self.message = "choose at least one label (space), then Enter"
            self._render()
            return
        encoded = encode_label_set(self.chosen, self.store.label_set)
        self.store.record_human_labels(
            [Annotation(self.entry.item_key, encoded, Source.HUMAN, Kind.LABEL,
                        actor=self.operator, meta={"task": "multi_label"})],
            self.operator,
        )  # fmt: skip
        self.saved += 1
        self.message = f"saved {', '.join(n for n in self.names if n in self.chosen)}"
        self._next()

    def action_skip(self) -> None:
        if self.entry is not None:
            self.store.skip(self.entry.item_key, self.operator)
            self.message = "skipped; it comes back after the rest"
        self._next()

    # ---- drawing -------------------------------------------------------------------------
    def _next(self) -> None:
        leased = self.store.lease(self.operator, 1, self.config.lease_seconds)
        self.entry = leased[0] if leased else None
        proposed = self.entry.suggestion.get("labels", []) if self.entry else []
        self.chosen, self.history, self.cursor = set(proposed), [], 0
        # Read once per item, not per keypress: the text and the queue's length.
        self.text = self.store.items([self.entry.item_key])[0].text if self.entry else ""
        self.waiting = self.store.queue_counts().get("pending", 0)
        self._render()

    def _render(self) -> None:
        self.query_one("#header", Static).update(
            f"multi-label review · {self.operator} · saved {self.saved} · {self.waiting} waiting")
        if self.entry is None:
            self.query_one("#text", Static).update("the queue is empty: q quits")
            self.query_one("#labels", Static).update("")
        else:
            why = f"[b]{escape(self.entry.reason)}[/b]: "
            self.query_one("#text", Static).update(why + escape(self.text))
            lines = (escape(line) for line in self.label_lines())
            self.query_one("#labels", Static).update("\n".join(lines))
        self.query_one("#scores-note", Static).update(escape(self.scores_note()))
        # the line under the cursor stays in view (one line per label), once laid out
        box = self.query_one("#labels-box", VerticalScroll)
        self.call_after_refresh(box.scroll_to_region, Region(0, self.cursor, 1, 1),
                                animate=False, x_axis=False)  # fmt: skip
        self.query_one("#message", Static).update(escape(self.message))

    def scores_note(self) -> str:
        """What the LLM's scores on this item are (how they were read), "" without them."""
        llm = (self.entry.suggestion.get("llm") or {}) if self.entry else {}
        method = llm.get("method")
        return f"LLM scores: {METHOD_WORDS.get(method, method)}" if method else ""

    def label_lines(self) -> list[str]:
        """One plain line per label: cursor, box, ★ for the proposed set, name, the LLM's and
        the classifier's P(in the set), and why it is in doubt."""
        s: dict[str, Any] = self.entry.suggestion if self.entry else {}
        proposed, doubt = set(s.get("labels", [])), s.get("doubt", {})
        llm = ((s.get("llm") or {}).get("scores")) or {}
        clf = s.get("classifier") or {}
        lines = []
        for i, name in enumerate(self.names):
            box = "[x]" if name in self.chosen else "[ ]"
            mark = "★" if name in proposed else " "
            scores = f"LLM {llm[name]:.2f} · clf {clf.get(name, 0.0):.2f}" if name in llm else (
                f"clf {clf[name]:.2f}" if name in clf else "")  # fmt: skip
            flag = f"  ? {doubt[name].split(':')[0]}" if name in doubt else ""
            pointer = ">" if i == self.cursor else " "
            lines.append(f"{pointer} {box} {mark} {name:<18} {scores}{flag}")
        return lines
