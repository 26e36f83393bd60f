"""Fixed-height text widgets that repaint only the rows that changed.

A Static repaints all of its rows on any change and a scroll container lays the screen out
again for every new text; at one card per keypress both cost more than the rest of the work.
These widgets keep their height from CSS and mark just the changed rows dirty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget


class LinesView(Widget):
    """Rows of rich Text, one screen line each (cropped with an ellipsis), height set by CSS."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: list[Text] = []
        self._strips: dict[int, Strip] = {}

    @property
    def plain(self) -> str:
        """What the rows say, without styles (for tests and logs)."""
        return "\n".join(row.plain for row in self.rows)

    def set_rows(self, rows: Sequence[Text]) -> None:
        """Show `rows`; only rows that differ from the ones shown are repainted."""
        width = self.content_size.width
        for y in range(max(len(self.rows), len(rows))):
            old = self.rows[y] if y < len(self.rows) else None
            new = rows[y] if y < len(rows) else None
            if old != new:
                self._strips.pop(y, None)
                self.refresh(Region(0, y, width, 1))  # content coordinates
        self.rows = list(rows)

    def render_line(self, y: int) -> Strip:
        strip = self._strips.get(y)
        width, style = self.content_size.width, self.rich_style
        if strip is None or strip.cell_length != width:
            if y < len(self.rows):
                text = self.rows[y].copy()
                text.truncate(width, overflow="ellipsis")
                strip = Strip(text.render(self.app.console)).apply_style(style)
                strip = strip.crop_extend(0, width, style)
            else:
                strip = Strip.blank(width, style)
            self._strips[y] = strip
        return strip

    def on_resize(self, event: events.Resize) -> None:
        self._strips.clear()


class TextPager(LinesView, can_focus=True):
    """A text wrapped to the widget's width; arrows, PgUp/PgDn and the wheel scroll it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "scroll_by(1)", "Down", show=False),
        Binding("up", "scroll_by(-1)", "Up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("home", "scroll_by(-1000000)", "Top", show=False),
        Binding("end", "scroll_by(1000000)", "End", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = Text()
        self.offset_y = 0
        self._wrapped: tuple[int, Text, list[Text]] | None = None  # (width, text, lines)

    def show(self, text: Text) -> None:
        """Show `text` from its first line."""
        self.text, self.offset_y = text, 0
        self._page()

    def lines(self) -> list[Text]:
        """The text wrapped to the current width (cached per width and text)."""
        width = max(1, self.content_size.width)
        if self._wrapped is None or self._wrapped[:2] != (width, self.text):
            wrapped = list(self.text.wrap(self.app.console, width))
            self._wrapped = (width, self.text, wrapped)
        return self._wrapped[2]

    def _page(self) -> None:
        """Show the rows from `offset_y`; the border says where we are in a long text."""
        lines, height = self.lines(), max(1, self.content_size.height)
        self.offset_y = max(0, min(self.offset_y, len(lines) - height))
        shown = lines[self.offset_y : self.offset_y + height]
        self.set_rows(shown)
        where = ""
        if len(lines) > height:
            last = self.offset_y + len(shown)
            where = f"lines {self.offset_y + 1}-{last} of {len(lines)} ↑↓"
        if (self.border_subtitle or "") != where:
            self.border_subtitle = where

    def action_scroll_by(self, lines: int) -> None:
        self.offset_y += lines
        self._page()

    def action_page(self, pages: int) -> None:
        self.action_scroll_by(pages * max(1, self.content_size.height - 1))

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_scroll_by(2)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_scroll_by(-2)

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        self._page()
