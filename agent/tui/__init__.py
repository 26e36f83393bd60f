"""The review TUI: `ReviewApp` (Textual) over `ReviewController` (the loop, testable alone)."""

from agent.tui.cards import Candidate, Card
from agent.tui.controller import Decision, ReviewController, ReviewServices
from agent.tui.summary import SessionSummary

__all__ = ["Candidate", "Card", "Decision", "ReviewController", "ReviewServices", "SessionSummary"]
