"""Widgets of the review screen: stats bar, card, candidate rows and neighbours.

Attributes go down (`show(...)` with plain data) and messages go up (`CandidateRow.Chosen`);
every `show` skips the update when nothing changed, so a keypress repaints only what moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from agent.tui.controller import MAX_CANDIDATES, Candidate, Card, ReviewStats
from agent.tui.pace import SLOW_RATIO

REASONS = {
    "disagree": "LLM and classifier disagree",
    "llm_unsure": "LLM unsure",
    "clf_unsure": "classifier unsure",
    "abstain": "LLM abstained",
    "committee_split": "classifier committee split",
    "audit": "random audit of an auto-accepted label",
    "no_evidence": "no machine evidence yet",
    "cold_start": "cold start: too few labels yet",
}


def describe_reason(reason: str) -> str:
    """Why the item was routed to a human, in words; unknown reasons are shown as they are."""
    return REASONS.get(reason, reason)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


class Refreshing(Static):
    """A Static that skips updates that change nothing, and layout when its size is fixed.

    A layout pass costs more than painting the whole card, so only widgets whose height follows
    their content (`layout_on_update`) ask for one.
    """

    layout_on_update = True
    _shown: str | None = None

    def show_text(self, text: Text | str) -> None:
        markup = text.markup if isinstance(text, Text) else text
        if markup != self._shown:
            self._shown = markup
            self.update(text, layout=self.layout_on_update)


class FixedLine(Refreshing):
    """A Refreshing widget whose size CSS fixes (height 1 or a set height): no layout pass."""

    layout_on_update = False


def stats_text(stats: ReviewStats) -> Text:
    """Left side of the header: progress, speed and quality of this session."""
    rate = "–" if stats.per_minute is None else f"{stats.per_minute:.1f}"
    text = Text.assemble(
        (f" {stats.operator} ", "bold reverse"), "  ",
        (f"{stats.done:,}", "bold"), " done · ", (f"{stats.remaining:,}", "bold"), " left  ",
        (rate, "bold"), "/min  agree ", (percent(stats.agreement), "bold"),
    )
    acc = stats.accuracy
    text.append("  est. accuracy ")
    if acc is None:
        text.append("–", "bold")
    else:
        text.append(percent(acc.get("value")), "bold")
        text.append(f" [{percent(acc.get('low'))}–{percent(acc.get('high'))}]")
    return text


def flags_text(stats: ReviewStats, retraining: bool) -> Text:
    """Right side of the header: retraining, slowing down, break reminder (empty when calm)."""
    text = Text()
    if retraining:
        text.append(" retraining… ", "bold black on yellow")
    if stats.slow_ratio is not None and stats.slow_ratio >= SLOW_RATIO:
        text.append(f" slower ×{stats.slow_ratio:.1f} ", "bold white on dark_orange3")
    if stats.break_due:
        text.append(f" {stats.minutes_working:.0f} min: take a break ", "bold white on red")
    return text


class StatsBar(Horizontal):
    """The one-line header."""

    def compose(self) -> ComposeResult:
        yield FixedLine(id="stats-left")
        yield Refreshing(id="stats-right")  # width follows the flags shown

    def show(self, stats: ReviewStats, retraining: bool) -> None:
        self.query_one("#stats-left", FixedLine).show_text(stats_text(stats))
        self.query_one("#stats-right", Refreshing).show_text(flags_text(stats, retraining))


class CandidateRow(FixedLine):
    """Candidate `number`: pressing the number or clicking the row picks it."""

    class Chosen(Message):
        """The operator clicked candidate `number`."""

        def __init__(self, number: int) -> None:
            self.number = number
            super().__init__()

    def __init__(self, number: int, label_width: int) -> None:
        super().__init__("", id=f"candidate-{number}", classes="candidate")
        self.number, self.label_width = number, label_width

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Chosen(self.number))

    def show(self, candidate: Candidate | None) -> None:
        """Show the candidate, or a blank line: rows never hide, so nothing needs a layout."""
        if candidate is None:
            self.show_text(Text())
        else:
            self.show_text(candidate_text(self.number, candidate, self.label_width))


def candidate_text(number: int, candidate: Candidate, label_width: int = 34) -> Text:
    """`1  card_arrival   ★ suggested  LLM 0.91  clf 0.55`, columns aligned."""
    llm = "" if candidate.llm_confidence is None else f"LLM {candidate.llm_confidence:.2f}"
    clf = "" if candidate.probability is None else f"clf {candidate.probability:.2f}"
    return Text.assemble(
        (f" {number} ", "bold reverse"), "  ",
        (f"{candidate.label:<{label_width}} ", "bold green" if candidate.suggested else "bold"),
        ("★ suggested " if candidate.suggested else " " * 12, "green"),
        f"{llm:<10}{clf}",
    )


def llm_text(card: Card) -> Text:
    """The LLM's label, confidence and rationale, and the session's one-line summary."""
    sugg = card.entry.suggestion
    llm = sugg.get("llm")
    text = Text()
    if llm:
        label = llm.get("label") or "(abstained)"
        text.append("LLM  ", "bold")
        text.append(str(label), "bold cyan")
        text.append(f"  {float(llm.get('confidence', 0.0)):.2f} ({llm.get('method', '?')})")
        if llm.get("rationale"):
            text.append(f"\n     “{llm['rationale']}”", "italic")
    else:
        text.append("LLM  no answer for this item", "dim")
    if sugg.get("detail"):
        text.append(f"\n{sugg['detail']}", "dim")
    return text


class TextPager(Widget, can_focus=True):
    """The item's text, wrapped to the widget's fixed size; keys and wheel scroll it.

    A scroll container would need a layout pass for every new text; this widget only repaints.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "scroll_by(1)", "Down", show=False),
        Binding("up", "scroll_by(-1)", "Up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("home", "scroll_by(-1000000)", "Top", show=False),
        Binding("end", "scroll_by(1000000)", "End", show=False),
    ]

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = Text()
        self.offset_y = 0
        self._wrapped: tuple[int, Text, list[Text]] | None = None  # (width, source, lines)

    def show(self, text: Text, title: str, subtitle: str) -> None:
        """Show `text` from its first line, titled on the border."""
        self.text, self.offset_y = text, 0
        self.border_title, self.border_subtitle = title, subtitle
        self.refresh()

    def lines(self) -> list[Text]:
        """The text wrapped to the current width (cached per width and text)."""
        width = max(1, self.content_size.width)
        if self._wrapped is None or self._wrapped[:2] != (width, self.text):
            wrapped = list(self.text.wrap(self.app.console, width))
            self._wrapped = (width, self.text, wrapped)
        return self._wrapped[2]

    def render(self) -> RenderableType:
        lines, height = self.lines(), max(1, self.content_size.height)
        self.offset_y = max(0, min(self.offset_y, len(lines) - height))
        shown = lines[self.offset_y : self.offset_y + height]
        if len(lines) > height:
            last = self.offset_y + len(shown)
            self.border_subtitle = f"lines {self.offset_y + 1}-{last} of {len(lines)} ↑↓"
        return Text("\n").join(shown)

    def action_scroll_by(self, lines: int) -> None:
        self.offset_y += lines
        self.refresh()

    def action_page(self, pages: int) -> None:
        self.action_scroll_by(pages * max(1, self.content_size.height - 1))

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_scroll_by(2)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_scroll_by(-2)


class CardView(Vertical):
    """The item under review: its text, the machines' views and the numbered candidates."""

    def __init__(self, label_width: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label_width = label_width  # the longest label name, so columns never shift

    def compose(self) -> ComposeResult:
        yield TextPager(id="card-text")
        yield FixedLine(id="card-llm")
        with Vertical(id="candidates"):
            for number in range(1, MAX_CANDIDATES + 1):
                yield CandidateRow(number, self.label_width)
        yield FixedLine(id="card-note")

    def show(self, card: Card | None) -> None:
        """Render `card`, or the empty-queue message when it is None; repaints, never lays out."""
        pager = self.query_one(TextPager)
        llm = self.query_one("#card-llm", FixedLine)
        if card is None:
            pager.show(Text("Nothing left to review for you. Press q to quit; items that the "
                            "session routes later will show up here."), "queue empty", "")
            llm.show_text("")
            shown: Sequence[Candidate] = ()
        else:
            subtitle = (f"routed: {describe_reason(card.entry.reason)} · "
                        f"p(wrong) {float(card.entry.suggestion.get('p_wrong', 0)):.2f}")
            pager.show(Text(card.item.text), f"item {card.key} · id {card.item.id}", subtitle)
            llm.show_text(llm_text(card))
            shown = card.candidates
        for number, row in enumerate(self.query(CandidateRow), start=1):
            row.show(shown[number - 1] if number <= len(shown) else None)
        self.show_note(card)

    def show_note(self, card: Card | None) -> None:
        note = card.note if card is not None else ""
        self.query_one("#card-note", FixedLine).show_text(
            Text.assemble(("note  ", "bold"), note) if note else Text()
        )


class NeighboursView(Refreshing):
    """Nearest labelled items, shown on demand (key k)."""

    def show_unavailable(self) -> None:
        self.show_text("Neighbours: not available in this session (no classifier services).")

    def show_loading(self) -> None:
        self.show_text("Neighbours: looking…")

    def show_neighbours(self, rows: Sequence[tuple[str, str, float]]) -> None:
        if not rows:
            self.show_text("Neighbours: no labelled items yet.")
            return
        text = Text("Nearest labelled items\n", "bold")
        for body, label, similarity in rows:
            flat = " ".join(body.split())
            text.append(f"{similarity:5.2f}  ")
            text.append(f"{label:<28}", "cyan")
            text.append(f"{flat[:120]}\n")
        text.rstrip()
        self.show_text(text)
