"""`labelagent run` on a multi-label project (issue 21), through the CLI on a real on-disk
project of go_emotions rows: how the LLM's per-label scores were read is kept with each answer
and told by `status`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from agent.app.cli import app
from agent.store.sqlite import Store

GO = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "go_emotions"


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def go_project(tmp: Path, n: int) -> tuple[Path, Path]:
    """A multi-label project (hashing vectors) on go_emotions' first `n` dev rows, and the
    oracle file of their gold sets."""
    with (GO / "dev.csv").open(encoding="utf-8", newline="") as handle:
        rows = [row for _, row in zip(range(n), csv.DictReader(handle))]
    data, gold = tmp / "data.csv", tmp / "gold.csv"
    for path, column in ((data, "text"), (gold, "labels")):
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([("id", column)] + [
                (f"r{i}", r[column]) for i, r in enumerate(rows)])  # fmt: skip
    project = tmp / "proj"
    code, out = invoke("init", project, "--labels", GO / "labels.json", "--multi-label",
                       "--embedding-model", "hashing")  # fmt: skip
    assert code == 0, out
    code, out = invoke("import", project, data, "--id-col", "id")
    assert code == 0, out
    return project, gold


def test_status_says_how_the_llm_scores_were_read(tmp_path: Path) -> None:
    project, gold = go_project(tmp_path, 60)
    code, out = invoke("run", project, "--llm", "simulated:acc=0.8", "--oracle-file", gold,
                       "--rounds", "1", "--batch-size", "20")  # fmt: skip
    assert code == 0, out
    with Store.open(project) as store:
        votes = store.latest_votes("llm")
    assert len(votes) == 20
    assert {json.loads(v["meta"])["confidence_method"] for v in votes.values()} == {"logprob"}
    code, out = invoke("status", project)
    assert code == 0 and "LLM scores per label from token log-probabilities (20 items)" in out
    code, out = invoke("status", project, "--json")
    assert json.loads(out)["llm_confidence"] == {"logprob": 20}
