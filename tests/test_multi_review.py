"""The multi-label review screen driven by Pilot on a real on-disk project: the proposed set
comes ticked with each label's source and score (and how the LLM's were read), space toggles,
`/` finds a label among go_emotions' 28 by a few letters and toggles it, `u` undoes a toggle,
Enter confirms the set in one transaction, an empty set is refused, `s` skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.containers import VerticalScroll
from textual.widgets import Static

from agent.config import ProjectConfig
from agent.store.sqlite import Store
from agent.tui.multi_review import SetReviewApp
from agent.tui.screens import LabelSearch
from agent.types import LabelSet, QueueEntry

LABELS = LabelSet(("anger", "joy", "sadness", "neutral"))
SIZE = (100, 30)
GO_LABELS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "go_emotions" / (
    "labels.json")  # fmt: skip


def make_project(folder: Path) -> Path:
    store = Store.create(folder, LABELS)
    store.add_items([("a", "I am furious and heartbroken", None), ("b", "nice weather", None)])
    suggestion = {
        "labels": ["anger"], "source": "llm", "p_right": 0.3,
        "doubt": {"sadness": "disagree: LLM 0.30, classifier 0.71"},
        "classifier": {"anger": 0.88, "joy": 0.02, "sadness": 0.71, "neutral": 0.05},
        "llm": {"labels": ["anger"], "rationale": "", "method": "logprob",
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
        note = str(app.query_one("#scores-note", Static).render())
        assert note == "LLM scores: token log-probabilities"
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


@pytest.mark.asyncio
async def test_slash_finds_a_label_among_28_by_a_few_letters_and_toggles_it(
    tmp_path: Path,
) -> None:
    """go_emotions' 28 labels do not fit the box; `/` + a few letters + Enter toggles the label
    found (the cursor lands on it, scrolled into view), `u` undoes it, Escape changes nothing;
    the search lists the labels in doubt first."""
    labels = LabelSet.from_json(json.loads(GO_LABELS.read_text(encoding="utf-8")))
    store = Store.create(tmp_path / "go", labels)
    store.add_items([("a", "thank you so much, this made my day", None)])
    store.enqueue([QueueEntry(1, "disagree", 1.0, 1, {
        "labels": ["joy"], "doubt": {"gratitude": "disagree: LLM 0.40, classifier 0.80"}})])
    app = SetReviewApp(store, ProjectConfig(), "alice")
    async with app.run_test(size=SIZE) as pilot:
        box = app.query_one("#labels-box", VerticalScroll)
        assert box.max_scroll_y > 0 and box.scroll_y == 0  # the labels need scrolling
        await pilot.press("slash")
        assert isinstance(app.screen, LabelSearch) and app.screen.first == ["gratitude", "joy"]
        await pilot.press(*"grat", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, LabelSearch)
        assert app.chosen == {"joy", "gratitude"} and labels.names[app.cursor] == "gratitude"
        assert "ticked gratitude" in str(app.query_one("#message", Static).render())
        await pilot.press("slash", *"surprse", "enter")  # a typo still finds it
        await pilot.pause()
        assert app.chosen == {"joy", "gratitude", "surprise"}
        assert box.scroll_y > 0 and box.scroll_y <= app.cursor < box.scroll_y + box.size.height
        await pilot.press("u", "slash", *"joy", "escape")  # undo; a cancelled search: nothing
        await pilot.pause()
        assert app.chosen == {"joy", "gratitude"}
        await pilot.press("slash", *"joy", "enter", "enter")  # untick joy, confirm the set
        await pilot.pause()
        await pilot.press("q")
    store.close()
    with Store.open(tmp_path / "go") as again:
        (row,) = again.annotations(source="human")
    assert row["label"] == '["gratitude"]'
