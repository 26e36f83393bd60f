"""The README's multi-label tour runs as written (issue 21): the ```bash block under
"### Multi-label" is taken from README.md verbatim and run line by line in one bash from the
repository root, with the virtual environment's `labelagent` on PATH and the real embedding
model (offline). Then the review step runs on the project it leaves, driven by Pilot."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest
from rich.console import Console
from test_readme_tour import README, run_tour
from textual.pilot import Pilot

from agent.app.multi_review import review_sets
from agent.config import ProjectConfig
from agent.store.sqlite import Store
from agent.types import decode_label_set

GO_DEV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "go_emotions" / "dev.csv"


def tour_lines() -> list[str]:
    section = README.read_text(encoding="utf-8").split("### Multi-label", 1)
    assert len(section) == 2, "README lost its multi-label tour"
    block = re.search(r"```bash\n(.*?)```", section[1], re.S)
    assert block is not None, "the multi-label tour has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("line", tour_lines())
def test_every_multi_label_tour_line_is_one_command(line: str) -> None:
    assert not line.rstrip().endswith("\\") and "|" not in line.split("#", 1)[0]


def test_the_multi_label_tour_runs_as_written_and_review_confirms_a_set(tmp_path: Path) -> None:
    lines = tour_lines()
    commands = [line.split()[1] for line in lines if line.startswith("labelagent ")]
    assert commands == ["init", "import", "run", "status", "export"]
    results = run_tour(lines, tmp_path)
    assert len(results) == len(lines), results[-1] if results else "nothing ran"
    for line, (status, _, err) in zip(lines, results):
        assert status == 0 and "Traceback" not in err, (line, err)
    run_err, status_out = results[4][2], results[5][1]
    assert "multi-label" in results[2][2] and "imported 300 items" in results[3][2]
    assert re.search(r"LLM in this run: \d+ paid calls", run_err), run_err
    assert "300 items (multi-label)" in status_out
    assert "estimated exact-set accuracy: at least" in status_out and "micro-F1" in status_out
    project = next(tmp_path.glob("*/emotions"))
    gold = {r["text"]: r["labels"] for r in _csv_rows(GO_DEV)}
    exported = _csv_rows(Path(f"{project}-labels.csv"))
    assert len(exported) == 300 and all(r["final_labels"] for r in exported)
    humans = [r for r in exported if r["label_status"] == "human"]
    assert 0 < len(humans) <= 100  # --human-budget 100
    assert all(r["final_labels"] == gold[r["text"]] for r in humans)  # the oracle's sets
    _review_one(project)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _review_one(project: Path) -> None:
    """Pilot: tick the label under the cursor on the first waiting item and confirm."""
    with Store.open(project) as store:
        before = store.queue_counts().get("pending", 0)
    assert before > 0, "the tour's run leaves items for review"
    picked: dict[str, object] = {}

    async def pilot(p: Pilot[None]) -> None:
        await p.pause()
        app = p.app
        picked["proposed"] = set(app.chosen)  # type: ignore[attr-defined]
        await p.press("space")  # toggle the first label of the set
        if not app.chosen:  # type: ignore[attr-defined]
            await p.press("down", "space")  # it was the whole set: tick the next one instead
        picked["confirmed"] = set(app.chosen)  # type: ignore[attr-defined]
        await p.press("enter", "q")

    with open(os.devnull, "w") as quiet:
        review_sets(project, ProjectConfig.load(project), "alice", auto_pilot=pilot,
                    console=Console(file=quiet))  # fmt: skip
    with Store.open(project) as store:
        rows = store.annotations(source="human")
        mine = [r for r in rows if r["actor"] == "alice"]
        assert store.queue_counts()["pending"] == before - 1
    assert len(mine) == 1 and picked["confirmed"] != picked["proposed"]
    assert set(decode_label_set(mine[0]["label"]) or ()) == picked["confirmed"]
