"""`labelagent review` on a multi-label project: the set review app, then one line saying
what this session saved and what is left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from agent.config import ProjectConfig
from agent.store.opening import open_store


def review_sets(
    project: Path, config: ProjectConfig, operator: str, auto_pilot: Any = None,
    console: Console | None = None,
) -> None:  # fmt: skip
    """Run the app (headless under `auto_pilot`, an async function of a Textual Pilot)."""
    from agent.tui.multi_review import SetReviewApp

    with open_store(project) as store:
        app = SetReviewApp(store, config, operator)
        app.run(headless=auto_pilot is not None, auto_pilot=auto_pilot)
        store.release_operator(operator)  # what was leased and not answered goes back
        left = store.queue_counts().get("pending", 0)
    (console or Console()).print(f"saved {app.saved} label sets this session; {left} wait for "
                                 "review", markup=False, highlight=False)  # fmt: skip
