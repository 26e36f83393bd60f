"""Modal screens over the review card: fuzzy label search, note entry and help.

Each returns its answer through `dismiss`, so the app decides what to do with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rapidfuzz import fuzz, process, utils
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from agent.tui.texts import FIGURES, FINAL_AUDIT_HELP, ORDER_RULE, REASONS

SEARCH_LIMIT = 40  # options shown at once; the list scrolls past what fits


def rank_labels(query: str, names: Sequence[str], first: Sequence[str] = ()) -> list[str]:
    """Labels best matching `query` (fuzzy, case and underscores ignored), best first.

    An empty query lists `first` (the card's candidates), then every other label in order.
    """
    if not query.strip():
        return [*first, *(n for n in names if n not in first)][:SEARCH_LIMIT]
    hits = process.extract(
        query, names, scorer=fuzz.WRatio, processor=utils.default_process, limit=SEARCH_LIMIT,
        score_cutoff=50,
    )
    return [str(name) for name, _, _ in hits]


class LabelSearch(ModalScreen[str | None]):
    """Type to filter labels; Enter picks the highlighted one, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]

    def __init__(self, names: Sequence[str], first: Sequence[str] = ()) -> None:
        super().__init__()
        self.names, self.first = list(names), list(first)

    def compose(self) -> ComposeResult:
        with Vertical(id="search-box", classes="dialog"):
            yield Static("Pick a label   [dim]type to filter · ↑↓ move · Enter pick · Esc cancel")
            yield Input(placeholder="label…", id="search-input")
            yield OptionList(id="search-results")

    def on_mount(self) -> None:
        self._fill("")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def _fill(self, query: str) -> None:
        results = self.query_one("#search-results", OptionList)
        results.set_options(Option(name, id=name) for name in rank_labels(query, self.names,
                                                                          self.first))
        results.highlighted = 0 if results.option_count else None

    def action_move(self, step: int) -> None:
        results = self.query_one("#search-results", OptionList)
        if results.option_count:
            current = results.highlighted or 0
            results.highlighted = max(0, min(results.option_count - 1, current + step))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        option = self.query_one("#search-results", OptionList).highlighted_option
        if option is not None:
            self.dismiss(option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class NoteDialog(ModalScreen[str | None]):
    """A one-line note for the current card; Enter saves, Escape keeps the old note."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, note: str = "") -> None:
        super().__init__()
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="note-box", classes="dialog"):
            yield Static("Note for this item   [dim]Enter save · Esc cancel")
            yield Input(value=self.note, placeholder="what should the next reader know?",
                        id="note-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP_KEYS = [
    ("Enter", "accept the ★ (the row's final answer)"),
    ("1-9", "pick the numbered candidate (or click it)"),
    ("/", "search all labels by typing a few letters"),
    ("x", "ambiguous, or no label fits"),
    ("s", "skip: behind everything you have not skipped, also after you quit"),
    ("u", "undo the last decision, said and shown on its card (again: earlier ones)"),
    ("n", "add a note to this item's decision"),
    ("k", "show or hide the nearest labelled items"),
    ("↑ ↓ PgUp PgDn", "scroll a long text"),
    ("?", "this help"),
    ("q", "quit; every decision is already saved (a summary is printed)"),
]


def help_text() -> str:
    """Keys, what every figure on the screen means, why items are here and in what order."""
    keys = "\n".join(f"  [bold]{key:<14}[/] {what}" for key, what in HELP_KEYS)
    figures = "\n".join(f"  [bold]{name:<11}[/] {what}" for name, what in FIGURES)
    listed = [*REASONS.items(), ("audit (end)", FINAL_AUDIT_HELP)]
    reasons = "\n".join(f"  [bold]{name:<16}[/] {what}" for name, what in listed)
    return (f"[b]Keys[/b]\n{keys}\n\n[b]On the screen[/b]\n{figures}\n\n"
            f"[b]Why an item is here[/b] (LLM: the zero-shot member under --llm none)\n"
            f"{reasons}\n\n[b]Order[/b]\n  {ORDER_RULE}")


class HelpScreen(ModalScreen[None]):
    """Every key, figure and routing reason, and the queue's order; ↑↓ scroll; Escape, ? or
    q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Static(help_text(), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
