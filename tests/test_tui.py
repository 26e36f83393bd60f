"""ReviewApp driven by Pilot on real on-disk projects: every key path, mouse, workers, snapshots."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_textual_snapshot import SVGImageExtension
from rich.text import Text
from syrupy.assertion import SnapshotAssertion
from textual._doc import take_svg_screenshot
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Input, Static

from agent.config import ProjectConfig
from agent.embed import HashingEmbedder
from agent.store.sqlite import Store
from agent.tui.app import ReviewApp
from agent.tui.lines import LinesView, TextPager
from agent.tui.screens import HelpScreen, LabelSearch, NoteDialog, rank_labels
from agent.types import Annotation, LabelSet, QueueEntry, Source

SIZE = (100, 32)
LABELS = LabelSet(("card_arrival", "card_linking", "exchange_rate", "lost_card", "refund"))
TEXTS = [
    "My card still has not arrived after two weeks, where is it?",
    "How do I link my new card to the app?",
    "What exchange rate do you use for euros?",
    "I think I lost my card on the train yesterday.",
    "I returned the shoes but the refund is not on my account.",
    "The card came but I cannot add it in the app.",
]
LONG_TEXT = " ".join(f"Sentence {i} of a long complaint about a missing card." for i in range(60))


class Services:
    """A real ReviewServices: HashingEmbedder neighbours; refresh rewrites the queue's suggestions.

    Uses its own Store connection, as the session does. `gate` holds refresh until a test lets go.
    """

    def __init__(
        self, folder: Path, embedder: HashingEmbedder, gate: threading.Event | None = None
    ) -> None:
        self.store, self.embedder, self.gate = Store.open(folder), embedder, gate
        self.refreshes = 0

    def refresh(self) -> None:
        """Suggest the most frequent human label for every pending item (a crude retraining)."""
        if self.gate is not None:
            self.gate.wait(10)
        rows = self.store.annotations(source="human", kind="label")
        labels = [r["label"] for r in rows if r["label"]]
        if labels:
            top = max(set(labels), key=labels.count)
            self.store.enqueue([QueueEntry(e.item_key, "clf_unsure", e.priority, 1,
                                           {"best": top, "classifier": [[top, 0.6]], "llm": None})
                                for e in self.store.pending()])
        self.refreshes += 1

    def neighbours(self, item_key: int, k: int) -> list[tuple[str, str, float]]:
        """Cosine neighbours among the items a human labelled."""
        labelled = {r["item_key"]: r["label"] for r in self.store.annotations(source="human",
                                                                              kind="label")}
        keys = [key for key, label in labelled.items() if label and key != item_key]
        if not keys:
            return []
        items = self.store.items([item_key, *keys])
        vectors = self.embedder.encode([it.text for it in items])
        sims = vectors[1:] @ vectors[0]
        order = np.argsort(-sims)[:k]
        return [(items[i + 1].text, labelled[keys[i]], float(sims[i])) for i in order]


def make_project(folder: Path, n: int = 6, long_first: bool = False) -> Path:
    """n items; item k has priority n-k; suggestions: best = LLM label = LABELS[k % 5]."""
    store = Store.create(folder, LABELS)
    texts = [LONG_TEXT if long_first and k == 0 else TEXTS[k % len(TEXTS)] for k in range(n)]
    store.add_items((f"t{k + 1}", text, None) for k, text in enumerate(texts))
    names = LABELS.names
    store.enqueue([
        QueueEntry(k, "disagree" if k % 2 else "audit", float(n - k), 1, {
            "llm": {"label": names[k % 5], "confidence": 0.82, "method": "logprob",
                    "rationale": "the customer names it"},
            "classifier": [[names[(k + 1) % 5], 0.55], [names[k % 5], 0.30]],
            "best": names[k % 5], "p_wrong": 0.4,
            "detail": f"LLM says {names[k % 5]} (0.82), classifier {names[(k + 1) % 5]} (0.55)",
        })
        for k in range(1, n + 1)
    ])
    store.close()
    return folder


def config(**update: Any) -> ProjectConfig:
    return ProjectConfig.model_validate({}).model_copy(update=update)


def open_app(folder: Path, operator: str = "alice", services: Services | None = None,
             **update: Any) -> ReviewApp:
    return ReviewApp(Store.open(folder), config(**update), operator, services)


def shown(app: ReviewApp, selector: str) -> str:
    """The text a widget shows now."""
    widget = app.query_one(selector)
    if isinstance(widget, LinesView):
        return widget.plain
    content = app.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


def painted(app: ReviewApp, selector: str) -> str:
    """The text a widget has painted, read back through Textual's render cache."""
    widget = app.query_one(selector)
    strips = widget.render_lines(Region(0, 0, *widget.outer_size))
    return "\n".join(strip.text for strip in strips)


def human_rows(app: ReviewApp) -> list[dict[str, Any]]:
    app.controller.flush()
    return app.controller.store.annotations(source="human", kind="label")


@pytest.fixture(scope="module")
def embedder() -> HashingEmbedder:
    return HashingEmbedder(dim=64)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.mark.asyncio
async def test_enter_accepts_and_saves_a_timed_human_label(project: Path) -> None:
    app = open_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert TEXTS[0] in painted(app, "#card-text")  # what the terminal shows now
        await pilot.press("enter")
        await pilot.pause()
        [row] = human_rows(app)
        assert (row["item_key"], row["label"], row["source"], row["actor"]) == (
            1, "card_linking", "human", "alice")
        assert row["duration_ms"] is not None and row["duration_ms"] >= 0
        assert json.loads(row["meta"])["reason"] == "disagree"
        assert app.query_one(TextPager).text.plain == TEXTS[1]
        assert TEXTS[1] in painted(app, "#card-text") and TEXTS[0] not in painted(app, "#card-text")
        assert "item 2" in painted(app, "#card-head")
        assert "exchange_rate" in painted(app, "#candidates").splitlines()[0]
        assert "1 done" in painted(app, "#stats") and "5 left" in painted(app, "#stats")


@pytest.mark.asyncio
async def test_numbers_and_mouse_pick_candidates(project: Path) -> None:
    app = open_app(project)
    async with app.run_test(size=SIZE) as pilot:
        assert shown(app, "#candidates").splitlines()[1].split()[1] == "exchange_rate"
        await pilot.press("2")  # item 1: 1 card_linking (best), 2 exchange_rate (classifier)
        await pilot.click("#candidates", offset=(10, 0))  # item 2: exchange_rate, the suggestion
        await pilot.click("#candidates", offset=(10, 5))  # a blank line: nothing happens
        await pilot.press("7")  # no 7th candidate on item 3: nothing happens
        await pilot.pause()
        rows = human_rows(app)
        assert [(r["item_key"], r["label"]) for r in rows] == [(1, "exchange_rate"),
                                                               (2, "exchange_rate")]
        assert app.controller.current is not None and app.controller.current.key == 3


@pytest.mark.asyncio
async def test_fuzzy_search_picks_any_label(project: Path) -> None:
    app = open_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash")
        assert isinstance(app.screen, LabelSearch)
        await pilot.press(*"lost crd")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, LabelSearch)
        await pilot.press("slash", "escape")  # cancel: nothing saved
        await pilot.pause()
        assert [(r["item_key"], r["label"]) for r in human_rows(app)] == [(1, "lost_card")]


def test_rank_labels_finds_names_among_two_hundred() -> None:
    names = [f"topic_{i}_{word}" for i, word in enumerate(["billing", "refund", "card"] * 67)]
    names.append("lost_or_stolen_card")
    assert rank_labels("lost stolen", names)[0] == "lost_or_stolen_card"
    assert rank_labels("", names, first=["topic_5_card"])[:2] == ["topic_5_card", "topic_0_billing"]


@pytest.mark.asyncio
async def test_skip_ambiguous_and_note(project: Path) -> None:
    app = open_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")  # item 1 goes to the back
        await pilot.press("n")
        assert isinstance(app.screen, NoteDialog)
        await pilot.press(*"two intents", "enter")
        await pilot.pause()
        assert "two intents" in shown(app, "#card-note")
        await pilot.press("x")  # item 2: ambiguous, with the note
        await pilot.pause()
        [row] = human_rows(app)
        assert row["item_key"] == 2 and row["label"] is None
        assert json.loads(row["meta"]) == {"reason": "audit", "suggested": "exchange_rate",
                                           "note": "two intents", "flag": "ambiguous"}
        assert app.controller.store.skipped("alice") == [1]  # behind the rest, for alice


@pytest.mark.asyncio
async def test_undo_several_levels_shows_cards_again(project: Path) -> None:
    app = open_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "enter", "enter")
        await pilot.press("u", "u")
        await pilot.pause()
        assert TEXTS[1] in painted(app, "#card-text")
        assert [r["item_key"] for r in human_rows(app)] == [1]
        await pilot.press("u", "u")  # the second u finds nothing left to undo
        await pilot.pause()
        assert app.query_one(TextPager).text.plain == TEXTS[0] and not human_rows(app)


@pytest.mark.asyncio
async def test_help_and_break_reminder(project: Path) -> None:
    app = open_app(project, break_after_minutes=0.001)  # a break is due after 60 ms of work
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.pause(0.1)
        await pilot.press("enter")
        await pilot.pause()
        assert "take a break" in painted(app, "#stats")


@pytest.mark.asyncio
async def test_quit_saves_and_another_session_resumes(project: Path) -> None:
    app = open_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "enter", "q")
        await pilot.pause()
    assert not app.is_running
    with Store.open(project) as store:
        assert len(store.annotations(source="human", kind="label")) == 2
        leased = {e.item_key for e in store.lease("bob", 10)}
        assert leased == {3, 4, 5, 6}  # alice's leases were given back at quit
        for key in leased:
            store.release(key, "bob")
    again = open_app(project)
    async with again.run_test(size=SIZE) as pilot:
        assert again.query_one(TextPager).text.plain == TEXTS[2]
        again.exit()  # not via q: unmounting still frees the leases
    with Store.open(project) as store:
        assert {e.item_key for e in store.lease("carol", 10)} == {3, 4, 5, 6}


@pytest.mark.asyncio
async def test_two_apps_on_one_project_never_share_an_item(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", n=12)
    alice, bob = open_app(project), open_app(project, "bob")
    async with alice.run_test(size=SIZE) as pa, bob.run_test(size=SIZE) as pb:
        for _ in range(3):
            await pa.press("enter")
            await pb.press("enter")
        await pa.pause()
        await pb.pause()
        done_a = {r["item_key"] for r in human_rows(alice) if r["actor"] == "alice"}
        done_b = {r["item_key"] for r in human_rows(bob) if r["actor"] == "bob"}
        assert len(done_a) == len(done_b) == 3 and not done_a & done_b


@pytest.mark.asyncio
async def test_long_text_scrolls_and_empty_queue_says_so(tmp_path: Path) -> None:
    app = open_app(make_project(tmp_path / "p", n=2, long_first=True))
    async with app.run_test(size=SIZE) as pilot:
        pager = app.query_one(TextPager)
        assert "of" in (pager.border_subtitle or "")  # "lines 1-10 of 44"
        assert "Sentence 0 " in painted(app, "#card-text")
        await pilot.press("pagedown")
        await pilot.pause()
        assert pager.offset_y > 0 and "Sentence 0 " not in painted(app, "#card-text")
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert "queue empty" in shown(app, "#card-head") and app.controller.current is None
        await pilot.press("enter")  # nothing to accept: a notice, no crash
        assert len(human_rows(app)) == 2


@pytest.mark.asyncio
async def test_retraining_runs_in_a_worker_without_blocking_keys(
    project: Path, embedder: HashingEmbedder
) -> None:
    gate = threading.Event()
    services = Services(project, embedder, gate)
    app = open_app(project, services=services, retrain_every=2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert "retraining" in shown(app, "#stats")
        await pilot.press("enter")  # keys work while the worker holds the retraining
        await pilot.pause()
        assert app.controller.current is not None and app.controller.current.key == 4
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert services.refreshes == 1 and "retraining" not in shown(app, "#stats")
        await pilot.press("enter")  # item 4 was shown before: the cards after it are fresh
        await pilot.pause()
        current = app.controller.current
        assert current is not None and current.entry.reason == "clf_unsure"


@pytest.mark.asyncio
async def test_neighbours_on_demand(project: Path, embedder: HashingEmbedder) -> None:
    app = open_app(project, services=Services(project, embedder))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "enter", "enter", "k")
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = shown(app, "#neighbours")
        assert "Nearest labelled items" in text and "card_linking" in text
    plain = open_app(project)
    async with plain.run_test(size=SIZE) as pilot:
        await pilot.press("k")
        assert "not available" in shown(plain, "#neighbours")


class TuiSnapshots(SVGImageExtension):
    """pytest-textual-snapshot's SVG files, kept in tests/snapshots/ instead of __snapshots__."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(Path(test_location.filepath).parent / "snapshots" / test_location.basename)


def screenshot(app: ReviewApp, *keys: str) -> str:
    async def run_before(pilot: Pilot) -> None:
        await pilot.press(*keys)
        await pilot.app.workers.wait_for_complete()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor would make the picture flaky

    return take_svg_screenshot(app=app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("keys", [(), ("slash", "c", "a", "r", "d"), ("n", *"check", "enter", "k")],
                         ids=["card", "search", "note-neighbours"])
def test_snapshots(
    keys: tuple[str, ...], snapshot: SnapshotAssertion, tmp_path: Path, embedder: HashingEmbedder
) -> None:
    folder = make_project(tmp_path / "p")
    with Store.open(folder) as store:  # another operator's earlier labels: the neighbours
        store.add_annotations([Annotation(k, LABELS.names[k % 5], Source.HUMAN, actor="bob")
                               for k in (2, 3, 4)])
    app = open_app(folder, services=Services(folder, embedder))
    assert snapshot.use_extension(TuiSnapshots) == screenshot(app, *keys)
