"""kill -9 in the middle of `labelagent run`, rerun: nothing accepted is lost, nothing paid twice,
and the rerun finishes the killed run (its remaining rounds) after closing its open round.

The job runs as a real subprocess against the OpenAI-compatible test server over HTTP, which
records every request. A reply that reached the store is never asked for again; only calls
still in flight at the moment of the kill (at most `concurrency`) can be sent a second time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.llm.test_server import LLMTestServer
from agent.routing.sources import current_labels
from agent.store.sqlite import Store

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "support"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent.app.cli", *args]


def _run_args(project: Path, base_url: str) -> list[str]:
    return _cli(
        "run", str(project), "--llm", "openai/test-model", "--api-base", base_url,
        "--rounds", "6", "--batch-size", "30", "--oracle-file", str(EXAMPLES / "gold.csv"),
        "--human-budget", "60",
    )


def _labels_snapshot(project: Path) -> dict[int, tuple[str | None, str]]:
    with Store.open(project) as store:
        return {k: (c.label, c.source) for k, c in current_labels(store).items()}


def test_kill_nine_mid_run_then_resume(tmp_path: Path) -> None:
    project = tmp_path / "p"
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "HF_HUB_OFFLINE": "1"}
    subprocess.run(_cli("init", str(project), "--labels", str(EXAMPLES / "labels.json"),
                        "--embedding-model", "hashing"), check=True, env=env)
    subprocess.run(_cli("import", str(project), str(EXAMPLES / "messages.csv"), "--id-col", "id"),
                   check=True, env=env)
    with LLMTestServer(latency_s=0.05) as server:
        job = subprocess.Popen(_run_args(project, server.base_url), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while server.stats.requests < 45 and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.02)  # kill in the middle of the second round's LLM calls
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
        sent_before_kill = server.stats.requests
        assert server.stats.requests >= 45, job.stderr.read().decode() if job.stderr else ""
        before = _labels_snapshot(project)
        with Store.open(project) as store:
            paid_before = store.cache_totals()["calls"]
        assert paid_before > 0

        rerun = subprocess.run(_run_args(project, server.base_url), env=env,
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        after = _labels_snapshot(project)
        with Store.open(project) as store:
            paid_after = store.cache_totals()["calls"]
            llm_votes = store.annotations(source="llm", kind="vote")
            rounds = store.rounds()
        bodies = [json.dumps(b["messages"], sort_keys=True) for b in server.stats.bodies]

    lost = {k: v for k, v in before.items() if v[1] == "human" and after.get(k) != v}
    assert not lost, f"accepted labels lost or changed: {lost}"
    repeated = [i for i, body in enumerate(bodies) if body in bodies[:i]]
    first_seen = [bodies.index(bodies[i]) for i in repeated]
    in_flight_at_kill = sent_before_kill - paid_before  # sent, but no reply stored yet
    assert len(repeated) <= in_flight_at_kill, f"{len(repeated)} prompts sent twice"
    assert all(i < sent_before_kill for i in first_seen), "a call made after the kill repeated"
    assert len(bodies) - len(repeated) == paid_after, "every distinct call is cached exactly once"
    assert len({v["item_key"] for v in llm_votes}) == len(llm_votes), "an item was asked twice"
    assert paid_after > paid_before
    # Resume means resume: the rerun closed the killed round and did only the plan's rest.
    assert "finishing the interrupted run: 1 of 6 rounds were done" in rerun.stderr
    assert all(r["finished_at"] is not None for r in rounds), "a round was left open"
    [killed] = [r for r in rounds if r["stats"].get("interrupted")]
    assert killed["id"] == 2 and "killed" in killed["stats"]["note"]
    normal = [r for r in rounds if not r["stats"].get("interrupted")]
    assert len(normal) == 6 + 1  # the plan's six rounds, then the final pass
