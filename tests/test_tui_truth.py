"""The review screen tells the truth: the ★ names its source and score, reasons are what the
loop assigned, undo says what it undid, skips outlast the session and quitting says what is left.

Real on-disk projects driven by Pilot; one is made by a real `--llm none` run on banking77.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets._toast import Toast

from agent import JobLimits, LabelingSession, ProjectConfig, run_job
from agent.app.commands import review_project
from agent.app.io import load_label_set
from agent.store.sqlite import Store
from agent.tui.app import ReviewApp
from agent.tui.cards import make_card
from agent.tui.screens import help_text
from agent.tui.widgets import accuracy_text, head_text
from agent.types import Annotation, Kind, LabelSet, QueueEntry, Source

SIZE = (110, 32)
LABELS = LabelSet(("beneficiary_not_allowed", "cancel_transfer", "pending_transfer",
                   "transfer_not_received_by_recipient", "refund_not_showing_up"))
PAYEE = ("I sent money to the wrong account by mistake and now the app says the payee is not "
         "allowed. Can I stop it before it goes through?")


def llm(label: str, confidence: float) -> dict[str, Any]:
    return {"label": label, "confidence": confidence, "rationale": "it says so",
            "method": "logprob"}


def suggestion(best: str, p_wrong: float, llm_view: dict[str, Any] | None,
               top: list[tuple[str, float]], first: str = "LLM") -> dict[str, Any]:
    """Shaped as `agent.loop.entries.suggestion` builds it."""
    return {"first_opinion": first, "llm": llm_view, "classifier": [list(t) for t in top],
            "best": best, "p_wrong": p_wrong, "detail": ""}


# LLM and classifier disagree; the best guess is a third label (the measured case).
COMBINED = suggestion("cancel_transfer", 0.59, llm("beneficiary_not_allowed", 1.0),
                      [("pending_transfer", 0.08), ("cancel_transfer", 0.07),
                       ("transfer_not_received_by_recipient", 0.06)])
FROM_LLM = suggestion("refund_not_showing_up", 0.07, llm("refund_not_showing_up", 0.93),
                      [("pending_transfer", 0.5), ("refund_not_showing_up", 0.3)])


def make_project(folder: Path, entries: list[tuple[str, str, dict[str, Any]]]) -> Path:
    """One item per (text, reason, suggestion), in that order of priority."""
    store = Store.create(folder, LABELS)
    store.add_items((f"b{k}", text, None) for k, (text, _, _) in enumerate(entries, 1))
    store.enqueue([QueueEntry(k, reason, float(100 - k), 3, sugg)
                   for k, (_, reason, sugg) in enumerate(entries, 1)])
    store.close()
    return folder


def open_app(folder: Path, operator: str = "alice") -> ReviewApp:
    return ReviewApp(Store.open(folder), ProjectConfig.model_validate({}), operator)


def text_of(app: ReviewApp, selector: str) -> str:
    return str(app.query_one(selector).plain)  # type: ignore[attr-defined]


def screen_text(app: ReviewApp) -> str:
    return "\n".join(text_of(app, s) for s in ("#stats", "#card-head", "#card-llm",
                                                "#candidates", "#card-note"))


def human_rows(app: ReviewApp) -> list[dict[str, Any]]:
    app.controller.flush()
    return app.controller.store.annotations(source="human", kind="label")


@pytest.mark.asyncio
async def test_the_star_names_the_llm_and_its_score(tmp_path: Path) -> None:
    app = open_app(make_project(tmp_path / "p", [("refund?", "disagree", FROM_LLM)]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        star = text_of(app, "#card-llm").splitlines()[-1]
        assert star == "★ refund_not_showing_up (P right 0.93) — the LLM's label"
        assert text_of(app, "#candidates").splitlines()[0].split()[:4] == [
            "1", "refund_not_showing_up", "★", "Enter"]
        assert "suggested" not in screen_text(app)


@pytest.mark.asyncio
async def test_a_combined_best_guess_says_so_and_enter_saves_it(tmp_path: Path) -> None:
    app = open_app(make_project(tmp_path / "p", [(PAYEE, "disagree", COMBINED)]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = text_of(app, "#card-llm").splitlines()
        assert shown[0].split()[:3] == ["LLM", "beneficiary_not_allowed", "1.00"]
        assert shown[2].startswith("classifier  pending_transfer 0.08 · cancel_transfer 0.07")
        assert shown[3] == ("★ cancel_transfer (P right 0.41) — combined guess of LLM and "
                            "classifier; neither ranked it first")
        await pilot.press("enter")
        await pilot.pause()
        [row] = human_rows(app)
        assert row["label"] == "cancel_transfer"
        assert json.loads(row["meta"])["suggested"] == "cancel_transfer"


@pytest.mark.asyncio
async def test_an_audit_of_a_final_pass_label_offers_that_label(tmp_path: Path) -> None:
    """After a queue refresh the entry's best guess may differ from the label the item carries;
    the ★ is the carried label, the one the export hands over and the audit measures."""
    later = suggestion("pending_transfer", 0.4, None,
                       [("pending_transfer", 0.6), ("cancel_transfer", 0.3)], "zero-shot")
    folder = make_project(tmp_path / "p", [("where is my refund", "audit", later)])
    with Store.open(folder) as store:
        store.add_annotations([
            Annotation(1, "cancel_transfer", Source.MODEL, Kind.LABEL, actor="final-pass",
                       confidence=0.88, round=3, meta={"stage": "final"}),
            Annotation(1, "cancel_transfer", Source.MODEL, Kind.VOTE, actor="best-guess",
                       confidence=0.88, round=3, meta={"stage": "final_audit", "reason": "audit"}),
        ])
    app = open_app(folder)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "routed: accuracy audit of the machine labels" in text_of(app, "#card-head")
        assert text_of(app, "#card-llm").splitlines()[-1] == (
            "★ cancel_transfer (P right 0.88) — already labelled by the classifier's final pass")
        await pilot.press("enter")
        await pilot.pause()
        assert [r["label"] for r in human_rows(app)] == ["cancel_transfer"]


@pytest.fixture(scope="module")
def llm_none_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `--llm none` job on 300 banking77 texts: round audits and an end-of-run audit
    are queued, nothing is auto-accepted."""
    datasets = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77"
    if not datasets.is_dir():
        pytest.skip(f"datasets not found at {datasets}")
    with (datasets / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:300]
    folder = tmp_path_factory.mktemp("banking") / "proj"
    store = Store.create(folder, load_label_set(datasets / "labels.json"))
    store.add_items((str(i), r["text"], None) for i, r in enumerate(rows))
    session = LabelingSession(store, ProjectConfig(embedding_model="hashing", batch_size=40))
    run_job(session, JobLimits(rounds=2, batch_size=40, human_budget=60))
    session.close()
    return folder


def is_final_audit_entry(store: Store, entry: QueueEntry) -> bool:
    """From the log, independently of the TUI: the end-of-run audit's vote in the entry's round."""
    return any(json.loads(r["meta"]).get("stage") == "final_audit" and r["round"] == entry.round
               for r in store.annotations(item_key=entry.item_key, kind="vote"))


@pytest.mark.asyncio
async def test_audit_reasons_are_true_after_a_real_run_without_an_llm(
    llm_none_project: Path, tmp_path: Path
) -> None:
    with Store.open(llm_none_project) as store:
        assert not store.annotations(kind="label")  # nothing was auto-accepted
        audits = [e for e in store.pending() if e.reason == "audit"]
        heads = {e.item_key: (is_final_audit_entry(store, e),
                              head_text(make_card(store, e, store.items([e.item_key])[0], 0.0))
                              .plain) for e in audits}
    assert {final for final, _ in heads.values()} == {True, False}  # both kinds are queued
    for final, head in heads.values():
        assert "auto-accepted" not in head
        if final:
            assert "routed: accuracy audit of the machine labels" in head
        else:  # a round's audit: the zero-shot member and the classifier agreed
            assert "random audit: zero-shot and classifier agree" in head
    app = open_app(llm_none_project)
    async with app.run_test(size=SIZE) as pilot:  # the screen shows the first one so
        await pilot.pause()
        card = app.controller.current
        assert card is not None and card.entry.reason == "audit"  # audits come first
        assert heads[card.key][1] in text_of(app, "#card-head")
        assert "none in this project (--llm none)" in text_of(app, "#card-llm")
        app.exit()


@pytest.mark.asyncio
async def test_undo_says_what_it_undid_and_shows_it_on_the_card(tmp_path: Path) -> None:
    app = open_app(make_project(tmp_path / "p", [(PAYEE, "disagree", COMBINED),
                                                 ("refund?", "disagree", FROM_LLM)]))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("3")  # pending_transfer, not the ★
        await pilot.press("u")
        await pilot.pause()
        said = [str(toast.render()).splitlines() for toast in app.screen.query(Toast)]
        assert ["Undo", "undid: 'pending_transfer' for item 1 (was suggested: cancel_transfer)"
                ] in said
        assert text_of(app, "#card-note") == "undone  you had answered pending_transfer"
        assert PAYEE in app.query_one("#card-text").text.plain  # type: ignore[attr-defined]
        await pilot.press("enter")  # decided again: the undone answer is no longer shown
        await pilot.pause()
        assert text_of(app, "#card-note") == ""
        assert [r["label"] for r in human_rows(app)] == ["cancel_transfer"]


@pytest.mark.asyncio
async def test_a_skip_outlasts_quitting_until_the_rest_is_done(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "p", [(f"text {k}", "disagree", FROM_LLM) for k in range(4)])
    first = open_app(folder)
    async with first.run_test(size=SIZE) as pilot:
        await pilot.press("s", "q")  # item 1 skipped, then quit
        await pilot.pause()
    again = open_app(folder)
    async with again.run_test(size=SIZE) as pilot:
        shown = []
        for _ in range(4):
            assert again.controller.current is not None
            shown.append(again.controller.current.key)
            await pilot.press("enter")
            await pilot.pause()
        assert shown == [2, 3, 4, 1]  # the skipped item after everything else, then back
    with Store.open(folder) as store:
        assert store.skipped("alice") == [] and store.queue_size() == 0
    alice_skips = open_app(make_project(tmp_path / "q", [("a", "disagree", FROM_LLM),
                                                       ("b", "disagree", FROM_LLM)]))
    async with alice_skips.run_test(size=SIZE) as pilot:
        await pilot.press("s", "q")
    with Store.open(tmp_path / "q") as store:  # alice's skip is hers: bob gets item 1 first
        assert [e.item_key for e in store.lease("bob", 2)] == [1, 2]
        assert [e.item_key for e in store.lease("alice", 2)] == []  # bob holds both


def test_quitting_review_prints_what_was_saved_and_what_is_left(
    llm_none_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    folder = tmp_path / "proj"
    shutil.copytree(llm_none_project, folder)
    with Store.open(folder) as store:
        waiting = store.queue_size()

    async def operator(pilot: Pilot[None]) -> None:
        await pilot.press("enter", "n", *"typo", "enter", "x", "s", "1", "u", "q")

    review_project(folder, ProjectConfig(embedding_model="hashing"), "alice", operator)
    said = capsys.readouterr().out.strip().splitlines()[-1]
    assert said == (f"saved 2 labels (1 none fits, 1 with a note) this session; 1 skipped by you "
                    f"(they come back after the rest); {waiting - 2:,} wait for review")


def test_help_explains_the_figures_and_the_order() -> None:
    text = help_text()
    for figure in ("P right", "logprob", "consistency", "stated", "cosine similarity",
                   "per minute", "lower end of its 95% interval", "audits"):
        assert figure in text, figure
    assert "Audits come first" in text and "P(★ wrong)" in text
    assert "auto-accepted label" not in text


def test_the_header_leads_with_the_lower_bound_and_says_unknown_without_audits() -> None:
    assert accuracy_text(None).plain == "unknown"
    assert accuracy_text({"value": 0.5, "low": 0.0, "high": 1.0, "audits": 0}).plain == "unknown"
    shown = accuracy_text({"value": 0.95, "low": 0.803, "high": 1.0, "audits": 12}).plain
    assert shown == "≥80% (est 95%, 12 audits)"
