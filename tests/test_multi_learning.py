"""Multi-label: `run --target-accuracy` on a multi-label project, the LLM asked ahead of
people, and the threshold evidence kept on the audit queue entries (issue 21)."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from agent.app.cli import app
from agent.config import ProjectConfig
from agent.labeller.multi import MultiLabeller
from agent.llm.multi_sim import SimulatedMultiLLM
from agent.loop.multi_job import THRESHOLDS_META, MultiLimits, audit_rows, run_multi_job
from agent.loop.session import LabelingSession
from agent.routing.multi import AUDIT, CANDIDATES_META
from agent.store.sqlite import Store
from agent.types import Item, LabelSet, encode_label_set

REPO = Path(__file__).resolve().parents[1]
GO = REPO.parent / "shared" / "datasets" / "go_emotions"


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def go_project(tmp: Path, n: int) -> tuple[Path, Path]:
    """A multi-label project on go_emotions' first `n` dev rows, and its oracle file."""
    with (GO / "dev.csv").open(encoding="utf-8", newline="") as handle:
        rows = [row for _, row in zip(range(n), csv.DictReader(handle))]
    data, gold = tmp / "data.csv", tmp / "gold.csv"
    with data.open("w", encoding="utf-8", newline="") as d, gold.open("w", encoding="utf-8",
                                                                    newline="") as g:  # fmt: skip
        csv.writer(d).writerows([("id", "text")] + [(f"r{i}", r["text"]) for i, r in
                                                     enumerate(rows)])  # fmt: skip
        csv.writer(g).writerows([("id", "labels")] + [(f"r{i}", r["labels"]) for i, r in
                                                       enumerate(rows)])  # fmt: skip
    project = tmp / "proj"
    code, out = invoke("init", project, "--labels", GO / "labels.json", "--multi-label",
                       "--embedding-model", "hashing")  # fmt: skip
    assert code == 0, out
    code, out = invoke("import", project, data, "--id-col", "id")
    assert code == 0, out
    return project, gold


def test_run_takes_target_accuracy_on_a_multi_label_project(tmp_path: Path) -> None:
    """The single-label flag reaches the multi-label job: the thresholds of the run's last
    round were certified for the LLM-answered items as routed at that accuracy."""
    project, gold = go_project(tmp_path, 60)
    code, out = invoke("run", project, "--llm", "simulated:acc=0.8", "--oracle-file", gold,
                       "--rounds", "2", "--batch-size", "30", "--target-accuracy", "0.85")
    assert code == 0, out
    with Store.open(project) as store:
        assert store.get_meta(THRESHOLDS_META)["target_accuracy"] == 0.85
    code, out = invoke("run", project, "--rounds", "1", "--target-accuracy", "1.5")
    assert code == 2  # typer's range check, as on single-label


def go_session(n: int, seed: int = 0) -> tuple[Any, dict[str, tuple[str, ...]]]:
    """A library multi-label session over go_emotions' first `n` dev rows (hashing vectors)
    with the simulated LLM at 0.75, and the gold sets by id."""
    from agent.embed import HashingEmbedder

    labels = LabelSet.from_json(json.loads((GO / "labels.json").read_text()))
    with (GO / "dev.csv").open(encoding="utf-8", newline="") as handle:
        rows = [row for _, row in zip(range(n), csv.DictReader(handle))]
    texts = [r["text"] for r in rows]
    gold = {str(i): tuple(r["labels"].split("|")) for i, r in enumerate(rows)}
    session = LabelingSession.from_texts(texts, labels, multi_label=True,
                                         config=ProjectConfig(seed=seed, task="multi_label"),
                                         embedder=HashingEmbedder())  # fmt: skip
    session.backend = SimulatedMultiLLM(labels, {t: gold[str(i)] for i, t in enumerate(texts)},
                                        accuracy=0.75, seed=seed)  # fmt: skip
    return session, gold


def run_job(
    session: Any, gold: dict[str, tuple[str, ...]], limits: MultiLimits, on_event: Any = None
) -> Any:
    labeller = MultiLabeller(session.backend, session.label_set, session.config.llm,
                             session.store)  # fmt: skip

    def oracle(item: Item) -> str:
        return encode_label_set(gold[item.id], session.label_set)

    return run_multi_job(session, limits, labeller, oracle, on_event)


def test_the_llm_runs_ahead_of_people_once_thresholds_are_certified() -> None:
    """With llm_batch, rounds ask the LLM on batch_size items until the audits certify
    thresholds, then on llm_batch; people answer at most batch_size a round, the most doubtful
    waiting items first; the rest wait in the queue with the LLM's set as suggestion."""
    session, gold = go_session(600)
    waiting: list[dict[int, float]] = []  # after each round: pending key -> priority

    def on_event(kind: str, data: Any) -> None:
        if kind == "round":
            waiting.append({e.item_key: e.priority for e in session.store.pending()})

    report = run_job(session, gold, MultiLimits(7, 40, None, 0.8, llm_batch=150), on_event)
    sizes = [r["selected"] for r in report.per_round]
    assert sizes[0] == 40 and max(sizes) == 150 and 150 in sizes[1:]
    assert all(r["human_labels"] <= 40 for r in report.per_round)
    assert any(r["human_labels"] == 40 for r in report.per_round) and waiting[-1]
    checked = 0
    for before, after in itertools.pairwise(waiting):  # items left over from the round before
        taken = [p for k, p in before.items() if k not in after]
        kept = [p for k, p in before.items() if k in after]
        if taken and kept:
            assert min(taken) >= max(kept)
            checked += 1
    assert checked
    views = session.store.queue_views()
    left = [views[k] for k in waiting[-1] if views[k].reason not in (AUDIT, "llm_abstain")]
    assert left and all(v.suggestion["source"] == "llm" for v in left)
    session.close()


def test_audits_are_kept_on_their_queue_entries_and_a_resumed_run_reuses_them() -> None:
    """The threshold evidence is read from the audit entries (no per-item meta value that
    grows and is rewritten every round); a second run on the same store counts the first
    run's audits; a project whose rows sit in the old meta value still has them read."""
    session, gold = go_session(300)
    run_job(session, gold, MultiLimits(2, 40, None, 0.8))
    assert session.store.get_meta(CANDIDATES_META) is None
    audits = [v for v in session.store.queue_views().values() if v.reason == AUDIT]
    rows = audit_rows(session)
    assert len(rows) == len(audits) > 0 and all(len(r) == 6 and r[5] for r in rows)
    first = session.store.get_meta(THRESHOLDS_META)["evidence"]
    run_job(session, gold, MultiLimits(1, 40, None, 0.8))
    assert session.store.get_meta(THRESHOLDS_META)["evidence"] >= max(first, len(audits))
    legacy = [[10**6, 0.9, 0.5, False, '["joy"]', True], [10**6 + 1, 0.9, 0.5, False,
                                                         '["joy"]', False]]  # fmt: skip
    session.store.set_meta(CANDIDATES_META, legacy)
    assert len(audit_rows(session)) == len(rows) + 1  # the audited legacy row only
    session.close()
