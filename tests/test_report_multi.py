"""`labelagent report` of a multi-label project (issue 21): the page and PNGs in the place of
the single-label report, led by the exact-set estimate, with micro-/macro-F1 and each label's
precision and recall, every figure with its interval and equal to what `status --json` says.

The project is made by the real CLI (hashing embedder, the simulated multi-label LLM, GoEmotions
gold sets as the operator), so the audits behind the figures are the real thing.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.app.report_data import spend_points
from agent.store.sqlite import Store
from tests.test_report import png_size

GO = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "go_emotions"
FIGURES = ("labels.png", "spend.png")
NUMBER = re.compile(r"\d+\.\d+")


def invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def init(folder: Path) -> Path:
    invoke("init", folder, "--labels", GO / "labels.json", "--multi-label", "--embedding-model",
           "hashing")  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GO.is_dir():
        pytest.skip(f"go_emotions not found at {GO}")
    tmp = tmp_path_factory.mktemp("report-multi")
    with (GO / "dev.csv").open(encoding="utf-8") as handle:
        corpus = "".join(line for _, line in zip(range(241), handle))  # header + 240 comments
    (tmp / "c.csv").write_text(corpus, encoding="utf-8")
    folder = init(tmp / "emotions")
    invoke("import", folder, tmp / "c.csv")
    invoke("run", folder, "--llm", "simulated:acc=0.75", "--oracle-file", tmp / "c.csv",
           "--rounds", "3", "--batch-size", "30", "--human-budget", "110")  # fmt: skip
    return folder


def tables(page: str) -> tuple[dict[str, str], list[list[str]]]:
    """The status table (field -> value) and the per-label table's rows, unescaped."""
    status = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", page))
    body = page.split('<table class="labels">', 1)[1].split("</table>", 1)[0]
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in body.split("<tr>")[2:]]
    unescape = html.unescape
    return ({unescape(k): unescape(v) for k, v in status.items()},
            [[unescape(c) for c in r] for r in rows])  # fmt: skip


def figure(cell: str) -> dict[str, float] | None:
    """"0.812 (0.701 - 0.903)" as {value, low, high} (rounded as printed); "–" as None."""
    if cell == "–":
        return None
    value, low, high = (float(x) for x in NUMBER.findall(cell))
    return {"value": value, "low": low, "high": high}


def rounded(fig: dict[str, Any] | None) -> dict[str, float] | None:
    return None if fig is None else {k: round(fig[k], 3) for k in ("value", "low", "high")}


def test_the_report_shows_the_figures_of_status_json(ran: Path) -> None:
    printed = invoke("report", ran).strip()
    assert printed == str(ran / "report" / "report.html")
    for name in FIGURES:
        width, height = png_size(ran / "report" / name)
        assert width >= 500 and height >= 400
    info = json.loads(invoke("status", ran, "--json"))
    status, per_label = tables(Path(printed).read_text(encoding="utf-8"))
    est, f1 = info["estimated_accuracy"], info["audit_f1"]
    assert f1 is not None and f1["audits"] > 0 and est["value"] is not None
    headline = status["estimated exact-set accuracy"]
    assert next(iter(status)) == "estimated exact-set accuracy"  # the headline leads
    assert headline.startswith(f"at least {est['low']:.1%} ({est['value']:.1%}, 95% interval "
                               f"{est['low']:.1%} - {est['high']:.1%}")  # fmt: skip
    assert f"{est['audits']} audited" in headline
    assert figure(status["micro-F1"]) == rounded(f1["micro_f1"])
    assert figure(status["macro-F1"]) == rounded(f1["macro_f1"])
    assert status["audited sets"] == str(f1["audits"]) and status["items"] == "240"
    assert [r[0] for r in per_label] == list(f1["per_label"])  # label-set order
    for name, precision, recall, machine, people, both in per_label:
        want = f1["per_label"][name]
        assert figure(precision) == rounded(want["precision"]), name
        assert figure(recall) == rounded(want["recall"]), name
        assert (int(machine), int(people), int(both)) == (
            want["machine"], want["people"], want["both"])
        for fig in (want["precision"], want["recall"]):
            assert fig is None or fig["low"] <= fig["value"] <= fig["high"]


def test_the_spend_figure_counts_each_rounds_llm_calls_once(ran: Path) -> None:
    with Store.open(ran) as store:
        points = spend_points(store)
        paid = int(store.cache_totals()["calls"])
        humans = store.count_annotations(source="human", kind="label")
    assert [p.round for p in points] == [1, 2, 3]
    assert points[-1].llm_calls == paid > 0  # the rounds' own calls add up to the run's
    spent = [p.human_labels for p in points]
    assert spent == sorted(spent) and spent[-1] <= humans


def test_report_of_a_multi_label_project_without_audits(tmp_path: Path) -> None:
    if not GO.is_dir():
        pytest.skip(f"go_emotions not found at {GO}")
    folder = init(tmp_path / "empty")
    printed = invoke("report", folder).strip()
    assert printed == str(folder / "report" / "report.html")
    for name in FIGURES:
        png_size(folder / "report" / name)
    page = (folder / "report" / "report.html").read_text(encoding="utf-8")
    assert "no items" in page and "No audited sets yet" in page
