"""`labelagent report`: a real run's project gives four PNGs and one HTML page with its status.

The project is made by the real CLI (hashing embedder, simulated LLM, the demo's gold file as
the operator), so the rounds, votes, audits and spend behind the figures are the real thing.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.app.render import format_estimate
from agent.app.report import FIGURES, PAGE
from agent.app.report_data import audit_confusion, round_points
from agent.app.status import project_status
from agent.config import ProjectConfig
from agent.routing.accuracy import estimate_from_store
from agent.store.sqlite import Store

REPO = Path(__file__).resolve().parents[1]
SUPPORT = REPO / "examples" / "support"


def invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "support"
    invoke("init", folder, "--labels", SUPPORT / "labels.json", "--embedding-model", "hashing")
    invoke("import", folder, SUPPORT / "messages.csv", "--id-col", "id")
    invoke("run", folder, "--llm", "simulated:acc=0.85,abstain=0.03", "--rounds", "3",
           "--batch-size", "30", "--human-budget", "70", "--oracle-file",
           SUPPORT / "gold.csv")  # fmt: skip
    return folder


@pytest.mark.slow
def test_report_writes_the_figures_and_the_page(ran: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    printed = invoke("report", ran, "--out", out).strip()
    assert printed == str(out / PAGE)
    for name in FIGURES:
        width, height = png_size(out / name)
        assert width >= 500 and height >= 400
    page = (out / PAGE).read_text(encoding="utf-8")
    assert all(f'src="{name}"' in page for name in FIGURES)
    config = ProjectConfig.load(ran)
    with Store.open(ran) as store:
        status = project_status(store, config.routing, config.llm)
        points = round_points(store, config.routing)
        rounds = [r for r in store.rounds() if r["finished_at"] is not None]
    assert format_estimate(status["estimated_accuracy"]).replace("'", "&#x27;") in page
    assert f"<th>items</th><td>{status['items']:,}</td>" in page
    assert len(re.findall(r"<tr><td>\d+</td>", page)) == len(rounds) == len(points)


@pytest.mark.slow
def test_round_figures_follow_the_run(ran: Path) -> None:
    config = ProjectConfig.load(ran)
    with Store.open(ran) as store:
        points = round_points(store, config.routing)
        now = estimate_from_store(store, config.routing)
        confusion = audit_confusion(store)
        humans = store.count_annotations(source="human", kind="label")
    spent = [p.human_labels for p in points]
    assert spent == sorted(spent) and spent[-1] == humans  # never down; all of them by the end
    assert now is not None and points[-1].estimate == pytest.approx(
        {"value": now.value, "low": now.low, "high": now.high})  # the view at the end = the store
    assert any(p.compared for p in points) and any(p.llm_audits for p in points)
    assert all(0 <= p.agreement <= 1 for p in points if p.agreement is not None)
    assert 0 < confusion.counts.sum() <= humans
    assert confusion.counts.shape == (len(confusion.labels),) * 2


def test_report_on_a_project_without_rounds(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    invoke("init", folder, "--labels", SUPPORT / "labels.json", "--embedding-model", "hashing")
    printed = invoke("report", folder).strip()
    assert printed == str(folder / "report" / PAGE)
    for name in FIGURES:
        png_size(folder / "report" / name)
    assert "unknown: nobody has checked any label yet" in (folder / "report" / PAGE).read_text()


def test_report_of_no_project_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a labelagent project" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
