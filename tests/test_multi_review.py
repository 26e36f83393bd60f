"""The multi-label review screen driven by Pilot on a real on-disk project: the proposed set
comes ticked with each label's source and score, space toggles, `u` undoes a toggle, Enter
confirms the set in one transaction, an empty set is refused, `s` skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from agent.config import ProjectConfig
from agent.store.sqlite import Store
from agent.tui.multi_review import SetReviewApp
from agent.types import LabelSet, QueueEntry

LABELS = LabelSet(("anger", "joy", "sadness", "neutral"))
SIZE = (100, 30)


def make_project(folder: Path) -> Path:
    store = Store.create(folder, LABELS)
    store.add_items([("a", "I am furious and heartbroken", None), ("b", "nice weather", None)])
    suggestion = {
        "labels": ["anger"], "source": "llm", "p_right": 0.3,
        "doubt": {"sadness": "disagree: LLM 0.30, classifier 0.71"},
        "classifier": {"anger": 0.88, "joy": 0.02, "sadness": 0.71, "neutral": 0.05},
        "llm": {"labels": ["anger"], "rationale": "",
                "scores": {"anger": 0.93, "joy": 0.02, "sadness": 0.3, "neutral": 0.02}},
    }  # fmt: skip
    store.enqueue([QueueEntry(1, "disagree", 2.0, 1, suggestion),
                   QueueEntry(2, "clf_unsure", 1.0, 1, {"labels": ["neutral"]})])  # fmt: skip
    store.close()
    return folder


def human_sets(folder: Path) -> dict[int, str]:
    with Store.open(folder) as store:
        return {r["item_key"]: r["label"] for r in store.annotations(source="human")}


@pytest.mark.asyncio
async def test_space_toggles_enter_confirms_and_the_set_is_saved(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "p")
    store = Store.open(folder)
    app = SetReviewApp(store, ProjectConfig(), "alice")
    async with app.run_test(size=SIZE) as pilot:
        lines = app.label_lines()
        assert lines[0].startswith("> [x] ★ anger") and "LLM 0.93 · clf 0.88" in lines[0]
        assert lines[2].startswith("  [ ]   sadness") and "? disagree" in lines[2]
        await pilot.press("down", "down", "space")  # tick sadness
        assert app.chosen == {"anger", "sadness"}
        await pilot.press("down", "space", "u")  # tick neutral, then undo it
        assert app.chosen == {"anger", "sadness"}
        await pilot.press("enter")
        assert app.entry is not None and app.entry.item_key == 2  # the next item
        assert "saved anger, sadness" in str(app.query_one("#message", Static).render())
        await pilot.press("up", "space", "enter")  # untick neutral (the cursor wraps to it)
        message = str(app.query_one("#message", Static).render())
        assert app.chosen == set() and "choose at least one label" in message
        await pilot.press("s", "q")
    store.close()
    assert human_sets(folder) == {1: '["anger","sadness"]'}
    with Store.open(folder) as again:
        assert again.queue_counts() == {"done": 1, "pending": 1}
