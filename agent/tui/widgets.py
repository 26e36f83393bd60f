"""Widgets of the review screen: stats bar, card, candidate list and neighbours.

Attributes go down (`show(...)` with plain data) and messages go up (`CandidateList.Chosen`).
Everything on the card has a fixed size and repaints only changed rows (see lines.py), so a
keypress never triggers a layout pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from agent.routing.final_answer import suggestion_source
from agent.tui.cards import Candidate, Card
from agent.tui.controller import ReviewStats
from agent.tui.lines import LinesView, TextPager
from agent.tui.pace import SLOW_RATIO
from agent.tui.texts import describe_reason, star_score, star_words


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


class Refreshing(Static):
    """A Static (height follows content) that skips updates which change nothing."""

    _shown: str | None = None

    def show_text(self, text: Text | str) -> None:
        markup = text.markup if isinstance(text, Text) else text
        if markup != self._shown:
            self._shown = markup
            self.update(text)


def stats_text(stats: ReviewStats) -> Text:
    """Left side of the header: progress, speed and quality of this session."""
    rate = "–" if stats.per_minute is None else f"{stats.per_minute:.1f}"
    text = Text.assemble(
        (f" {stats.operator} ", "bold reverse"), "  ",
        (f"{stats.done:,}", "bold"), " done · ", (f"{stats.remaining:,}", "bold"), " left  ",
        (rate, "bold"), "/min  agree ", (percent(stats.agreement), "bold"),
    )
    text.append("  accuracy ")
    text.append_text(accuracy_text(stats.accuracy))
    return text


def accuracy_text(acc: dict[str, float] | None) -> Text:
    """`≥80% (est 95%, 12 audits)`: the lower bound first, so it is not taken for more than it
    is; `unknown` while no audit backs it."""
    audits = None if acc is None else acc.get("audits")
    if acc is None or acc.get("low") is None or audits == 0:
        return Text("unknown", "bold")
    where = f"est {percent(acc.get('value'))}"
    if audits is not None:
        where += f", {int(audits):,} audit{'s' if audits != 1 else ''}"
    return Text.assemble(("≥" + percent(acc.get("low")), "bold"), f" ({where})")


def flags_text(stats: ReviewStats, retraining: bool) -> Text:
    """Right side of the header: a decision still being written, retraining, slowing down,
    break reminder (empty when calm)."""
    text = Text()
    if stats.saving:
        text.append(f" saving {stats.saving}… ", "bold black on cyan")
    if retraining:
        text.append(" retraining… ", "bold black on yellow")
    if stats.slow_ratio is not None and stats.slow_ratio >= SLOW_RATIO:
        text.append(f" slower ×{stats.slow_ratio:.1f} ", "bold white on dark_orange3")
    if stats.break_due:
        text.append(f" {stats.minutes_working:.0f} min: take a break ", "bold white on red")
    return text


class StatsBar(LinesView):
    """The one-line header: figures on the left, warnings on the right."""

    _parts: tuple[Text, Text] = (Text(), Text())

    def show(self, stats: ReviewStats, retraining: bool) -> None:
        self._parts = (stats_text(stats), flags_text(stats, retraining))
        self._compose_line()

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        self._compose_line()

    def _compose_line(self) -> None:
        left, right = self._parts
        gap = self.content_size.width - left.cell_len - right.cell_len
        self.set_rows([Text.assemble(left, " " * max(1, gap), right)])


class CandidateList(LinesView):
    """Numbered candidates, one per row (nine rows always); keys 1-9 or a click pick one."""

    class Chosen(Message):
        """The operator clicked candidate `number`."""

        def __init__(self, number: int) -> None:
            self.number = number
            super().__init__()

    def __init__(self, label_width: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label_width = label_width
        self.candidates: Sequence[Candidate] = ()
        self.hover: int | None = None  # 0-based row under the mouse

    def show(self, candidates: Sequence[Candidate]) -> None:
        self.candidates = candidates
        rows = [candidate_text(n, c, self.label_width) for n, c in enumerate(candidates, 1)]
        if self.hover is not None and self.hover < len(rows):
            rows[self.hover].stylize("on grey23")
        self.set_rows(rows)

    def on_click(self, event: events.Click) -> None:
        event.stop()
        if 0 <= event.y < len(self.candidates):
            self.post_message(self.Chosen(event.y + 1))

    def on_mouse_move(self, event: events.MouseMove) -> None:
        row = event.y if 0 <= event.y < len(self.candidates) else None
        if row != self.hover:
            self.hover = row
            self.show(self.candidates)

    def on_leave(self, event: events.Leave) -> None:
        self.hover = None
        self.show(self.candidates)


def candidate_text(number: int, candidate: Candidate, label_width: int = 34) -> Text:
    """`1  card_arrival   ★ Enter      LLM 0.91  clf 0.55`, columns aligned."""
    llm = "" if candidate.llm_confidence is None else f"LLM {candidate.llm_confidence:.2f}"
    clf = "" if candidate.probability is None else f"clf {candidate.probability:.2f}"
    return Text.assemble(
        (f" {number} ", "bold reverse"), "  ",
        (f"{candidate.label:<{label_width}} ", "bold green" if candidate.suggested else "bold"),
        ("★ Enter     " if candidate.suggested else " " * 12, "green"),
        f"{llm:<10}{clf}",
    )


def llm_rows(card: Card) -> list[Text]:
    """The LLM's label, confidence and method; its rationale; the classifier's top labels; the ★
    with who proposed it and how sure the project is of it."""
    sugg = card.entry.suggestion
    return [*_llm_lines(sugg), classifier_line(sugg), star_line(card)]


def _llm_lines(sugg: dict[str, Any]) -> list[Text]:
    llm = sugg.get("llm")
    if llm:
        first = Text.assemble(
            ("LLM         ", "bold"), (str(llm.get("label") or "(abstained)"), "bold cyan"),
            f"  {float(llm.get('confidence', 0.0)):.2f} ({llm.get('method', '?')})",
        )
        why = Text(f"            “{llm['rationale']}”" if llm.get("rationale") else "", "italic")
        return [first, why]
    if sugg.get("first_opinion") == "zero-shot":
        return [Text("LLM         none in this project (--llm none)", "dim"), Text()]
    return [Text("LLM         no LLM answer on this entry", "dim"), Text()]


def classifier_line(sugg: dict[str, Any]) -> Text:
    """`classifier  pending_transfer 0.08 · cancel_transfer 0.07 · …` (its top three)."""
    top = sugg.get("classifier") or []
    text = Text("classifier  ", "bold")
    if not top:
        text.append("no scores yet", "dim")
    for i, (name, p) in enumerate(top):
        text.append(" · " if i else "")
        text.append(str(name), "cyan")
        text.append(f" {float(p):.2f}")
    return text


def star_line(card: Card) -> Text:
    """`★ cancel_transfer (P right 0.41) — combined guess of LLM and classifier; …`: the score
    next to the label, so a narrow screen cuts the words, never the figure."""
    answer = card.answer
    combined = answer.status == "suggested" and suggestion_source(card.entry.suggestion) == (
        "combined")
    words = star_words(answer, card.accepted.actor if card.accepted else "")
    words = words.replace("LLM", card.entry.suggestion.get("first_opinion", "LLM"))
    score = star_score(answer)
    return Text.assemble(
        ("★ ", "bold green"), (answer.label or "—", "bold green"),
        f" ({score})" if score else "", " — ", (words, "bold yellow" if combined else ""),
    )


def head_text(card: Card) -> Text:
    """Which item this is and why a human sees it."""
    first = card.entry.suggestion.get("first_opinion", "LLM")
    return Text.assemble(
        (f" item {card.key} ", "bold reverse"), f"  id {card.item.id}   routed: ",
        (describe_reason(card.entry.reason, first, card.final_audit), "bold yellow"),
    )


class CardView(Vertical):
    """The item under review: its text, the machines' views and the numbered candidates."""

    def __init__(self, label_width: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label_width = label_width  # the longest label name, so columns never shift

    def compose(self) -> ComposeResult:
        yield LinesView(id="card-head")
        yield TextPager(id="card-text")
        yield LinesView(id="card-llm")
        yield CandidateList(self.label_width, id="candidates")
        yield LinesView(id="card-note")

    def show(self, card: Card | None) -> None:
        """Render `card`, or the empty-queue message when it is None; repaints, never lays out."""
        if card is None:
            head = Text(" queue empty ", "bold reverse")
            body = Text("Nothing left to review for you. Press q to quit; items that the "
                        "session routes later will show up here.")
            llm: list[Text] = []
            shown: Sequence[Candidate] = ()
        else:
            head, body = head_text(card), Text(card.item.text)
            llm, shown = llm_rows(card), card.candidates
        self.query_one("#card-head", LinesView).set_rows([head])
        self.query_one(TextPager).show(body)
        self.query_one("#card-llm", LinesView).set_rows(llm)
        self.query_one(CandidateList).show(shown)
        self.show_note(card)

    def show_note(self, card: Card | None) -> None:
        """The answer an undo took back (until decided again) and the note, on one row."""
        parts = []
        if card is not None and card.earlier:
            parts.append(Text.assemble(("undone  ", "bold"), f"you had answered {card.earlier}"))
        if card is not None and card.note:
            parts.append(Text.assemble(("note  ", "bold"), card.note))
        rows = [Text("   ").join(parts)] if parts else []
        self.query_one("#card-note", LinesView).set_rows(rows)


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
