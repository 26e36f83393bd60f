"""One writer per run, claims per item, resume means resume (issue 15).

A second `labelagent run` on a project is refused with one line naming the holder; `--force`
takes over and the old run stops at its next round. Two runs at once (the CLI with `--force`,
or two library workers with distinct holders) never ask the LLM about one item twice: items are
claimed in the store before the LLM is asked. A rerun finishes an interrupted plan.
The LLM is the OpenAI-compatible test server over HTTP, as in `test_resume.py`.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_resume import EXAMPLES, REPO, _cli
from typer.testing import CliRunner

from agent.app.cli import app
from agent.app.io import load_label_set
from agent.config import ProjectConfig
from agent.llm.test_server import LLMTestServer
from agent.loop.job import JobLimits, run_job
from agent.loop.session import LabelingSession
from agent.store.sqlite import Store
from agent.types import Item, QueueEntry

ENV = {**os.environ, "OPENAI_API_KEY": "test-key", "HF_HUB_OFFLINE": "1"}


def _project(folder: Path, **llm: object) -> Path:
    """The support corpus in a project with the hashing embedder and LLM settings `llm`."""
    runner = CliRunner()
    init = ["init", str(folder), "--labels", str(EXAMPLES / "labels.json"),
            "--embedding-model", "hashing"]
    assert runner.invoke(app, init).exit_code == 0
    imported = ["import", str(folder), str(EXAMPLES / "messages.csv"), "--id-col", "id"]
    assert runner.invoke(app, imported).exit_code == 0
    if llm:
        config = ProjectConfig.load(folder)
        config.model_copy(update={"llm": config.llm.model_copy(update=llm)}).save(folder)
    return folder


def _llm_args(server: LLMTestServer) -> list[str]:
    return ["--llm", "openai/test-model", "--api-base", server.base_url]


def _assert_paid_once(project: Path, server: LLMTestServer) -> int:
    """Every item has at most one LLM vote; paid calls are exactly the distinct prompts."""
    with Store.open(project) as store:
        votes = store.annotations(source="llm", kind="vote")
        paid = int(store.cache_totals()["calls"])
    keys = [v["item_key"] for v in votes]
    assert len(keys) == len(set(keys)), "an item carries two LLM votes"
    bodies = [json.dumps(b["messages"], sort_keys=True) for b in server.stats.bodies]
    assert len(bodies) == len(set(bodies)), "a prompt was sent twice"
    assert paid == len(bodies) == len(keys), (paid, len(bodies), len(keys))
    return paid


# ---- one writer per run ----------------------------------------------------------------------
def test_a_second_run_is_refused_in_one_line_and_force_takes_over(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    holder = Store.open(project)  # this process stands for a run in progress
    holder.acquire_run_lock("nightly run")
    args = ["run", str(project), "--llm", "none", "--rounds", "1", "--batch-size", "10"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    [line] = refused.stderr.strip().splitlines()
    for part in ("'nightly run'", f"pid {os.getpid()}", socket.gethostname(), "since 20"):
        assert part in line, line
    with Store.open(project) as store:
        assert store.rounds() == [] and store.count_annotations() == 0  # nothing was written

    forced = CliRunner().invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert holder.heartbeat_run_lock("nightly run") is False  # the old holder learns it
    assert holder.run_lock() is None  # the forced run gave the lock back at its end
    holder.close()


def test_two_runs_at_once_pay_each_prompt_once(tmp_path: Path) -> None:
    """A second run forced in while the first waits on the LLM: the first run's items are
    claimed, so the second waits for those answers instead of buying them again; the first
    run stops at its next round, with one line."""
    project = _project(tmp_path / "p", concurrency=4)
    with LLMTestServer(latency_s=1.0) as server:
        base = ["run", str(project), *_llm_args(server), "--batch-size", "24"]
        first = subprocess.Popen(_cli(*base, "--rounds", "4"), env=ENV, text=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while server.stats.requests == 0 and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(_cli(*base, "--rounds", "1", "--force"), env=ENV,
                                capture_output=True, text=True, timeout=300)
        _, first_err = first.communicate(timeout=300)
        assert second.returncode == 0, second.stderr
        assert first.returncode == 2, first_err
        assert "taken over" in first_err and "Traceback" not in first_err, first_err
        assert _assert_paid_once(project, server) >= 24


WORKER = """
import sys, time
from pathlib import Path
from agent.app.commands import make_labeller, make_session_backend
from agent.loop.job import JobLimits, run_job
from agent.loop.session import LabelingSession

folder, name = Path(sys.argv[1]), sys.argv[2]
session = LabelingSession.open(folder)
session.holder = name
_ = session.pool
session.backend = make_session_backend(session, None)
labeller = make_labeller(session)
(folder / f"{name}.ready").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
report = run_job(session, JobLimits(rounds=1, batch_size=24), labeller)
print(report.rounds[0].selected, report.rounds[0].llm_calls)
session.close()
"""


def test_two_library_workers_with_distinct_holders_ask_each_item_once(tmp_path: Path) -> None:
    """Both select the same 24 items at the same moment; the claims split them. (The LLM's
    2 s gives the later worker time to select before the first one's round ends.)"""
    with LLMTestServer(latency_s=2.0) as server:
        project = _project(tmp_path / "p", model="openai/test-model", api_base=server.base_url)
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, str(project), name], cwd=REPO,
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("worker-a", "worker-b")
        ]
        deadline = time.monotonic() + 120
        while not all((project / f"{n}.ready").exists() for n in ("worker-a", "worker-b")):
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (project / "go").touch()
        outputs = [w.communicate(timeout=300) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        rounds = [tuple(map(int, out.split())) for out, _ in outputs]
        paid = _assert_paid_once(project, server)
    assert [selected for selected, _ in rounds] == [24, 24]
    assert sum(calls for _, calls in rounds) == paid == 24, rounds  # one worker's items


# ---- resume means resume ---------------------------------------------------------------------
class Interrupt(Exception):
    """Stands in for a kill in the middle of a round."""


def _session(n: int = 150) -> tuple[LabelingSession, dict[str, str]]:
    with (EXAMPLES / "messages.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:n]
    with (EXAMPLES / "gold.csv").open(encoding="utf-8", newline="") as handle:
        gold = {r["id"]: r["label"] for r in csv.DictReader(handle)}
    session = LabelingSession.from_texts(
        [r["text"] for r in rows], load_label_set(EXAMPLES / "labels.json"),
        ids=[r["id"] for r in rows],
        config=ProjectConfig(embedding_model="hashing"),
    )
    return session, gold


def test_a_rerun_finishes_the_interrupted_plan_and_closes_its_round() -> None:
    session, gold = _session()
    answered = {"n": 0, "stop_at": 12}

    def oracle(item: Item, entry: QueueEntry) -> str:
        answered["n"] += 1
        if answered["n"] == answered["stop_at"]:
            raise Interrupt
        return gold[item.id]

    limits = JobLimits(rounds=3, batch_size=10, human_per_round=5)
    with pytest.raises(Interrupt):  # dies in its third answer of round 3, or earlier
        run_job(session, limits, oracle=oracle, holder="nightly")
    rounds = session.store.rounds()
    done_before = sum(r["finished_at"] is not None for r in rounds)
    assert rounds[-1]["finished_at"] is None and 1 <= done_before < 3
    assert session.store.run_lock() is None  # released on the way out

    answered["stop_at"] = -1
    report = run_job(session, limits, oracle=oracle, holder="nightly")
    assert report.resumed_rounds == done_before
    assert len(report.rounds) == 3 - done_before and report.stop_reason == "3 rounds done"
    closed = session.store.rounds()[len(rounds) - 1]
    assert closed["finished_at"] is not None and closed["stats"]["interrupted"] is True
    assert "killed" in closed["stats"]["note"]
    assert all(r["finished_at"] is not None for r in session.store.rounds())

    again = run_job(session, limits, oracle=oracle, holder="nightly")  # the plan was finished
    assert again.resumed_rounds == 0 and len(again.rounds) == 3


def test_fresh_or_a_changed_plan_starts_anew() -> None:
    session, gold = _session()
    calls = {"n": 0}

    def oracle(item: Item, entry: QueueEntry) -> str:
        calls["n"] += 1
        if calls["n"] == 8:
            raise Interrupt
        return gold[item.id]

    limits = JobLimits(rounds=2, batch_size=10, human_per_round=5)
    with pytest.raises(Interrupt):
        run_job(session, limits, oracle=oracle, holder="nightly")
    fresh = run_job(session, limits, oracle=oracle, holder="nightly", fresh=True)
    assert fresh.resumed_rounds == 0 and len(fresh.rounds) == 2
    calls["n"] = 7
    with pytest.raises(Interrupt):
        run_job(session, limits, oracle=oracle, holder="nightly")
    changed = run_job(session, JobLimits(rounds=1, batch_size=10, human_per_round=5),
                      oracle=oracle, holder="nightly")
    assert changed.resumed_rounds == 0 and len(changed.rounds) == 1
