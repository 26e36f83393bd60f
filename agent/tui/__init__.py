"""The review TUI: `ReviewApp` (Textual) over `ReviewController` (the loop, testable alone)."""

from agent.tui.controller import Candidate, Card, Decision, ReviewController, ReviewServices

__all__ = ["Candidate", "Card", "Decision", "ReviewController", "ReviewServices"]
