"""The README's offline tour runs as written (issue 16, item 4).

The ```bash block under "### Offline tour" is taken from README.md verbatim and run line by
line in one bash, as a user types it into one terminal, from the repository root with the
virtual environment's `labelagent` on PATH and the real default embedding model (offline).
Each line must exit 0, and what it prints must agree with the project it leaves.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.loop.record import human_label_count
from agent.store.sqlite import Store

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARK = "@@tour-line"
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}


def tour_lines() -> list[str]:
    """The commands of the README's offline tour, exactly as written (comments stay)."""
    section = README.read_text(encoding="utf-8").split("### Offline tour", 1)
    assert len(section) == 2, "README lost its offline tour"
    block = re.search(r"```bash\n(.*?)```", section[1], re.S)
    assert block is not None, "the offline tour has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def run_tour(lines: list[str], tmp: Path) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each line, run in one bash; stops at the first failure."""
    script = "".join(
        f'{line}\nstatus=$?\necho "{MARK} $status"; echo "{MARK}" >&2\n'
        '[ "$status" -eq 0 ] || exit "$status"\n'
        for line in lines
    )
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "labelagent").is_file(), f"no labelagent console script in {bin_dir}"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHONWARNINGS")},
        **OFFLINE,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(tmp),  # mktemp -d makes the project in pytest's folder
        "COLUMNS": "200",
    }
    done = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=600)  # fmt: skip
    outs, errs = done.stdout.split(MARK), done.stderr.split(MARK)
    results = []
    for i in range(len(outs) - 1):  # outs[i + 1] starts with line i's status, then line i + 1's
        status = int(outs[i + 1].partition("\n")[0])
        out = outs[0] if i == 0 else outs[i].partition("\n")[2]
        results.append((status, out, errs[i]))
    return results

def test_the_offline_tour_runs_as_written(tmp_path: Path) -> None:
    lines = tour_lines()
    commands = [line.split()[1] for line in lines if line.startswith("labelagent ")]
    assert commands == ["init", "import", "estimate", "run", "status", "export"]
    results = run_tour(lines, tmp_path)
    assert len(results) == len(lines), results[-1] if results else "nothing ran"
    for line, (status, _, err) in zip(lines, results):
        assert status == 0, (line, err)
        assert "Traceback" not in err, (line, err)
    by_command = dict(zip(["setup", *commands], results))
    project = next(tmp_path.glob("*/support"))
    _check_outputs(by_command, project)


def _check_outputs(results: dict[str, tuple[int, str, str]], project: Path) -> None:
    assert "with 8 labels" in results["init"][2]
    assert "imported 405 items" in results["import"][2]
    estimate = results["estimate"][1]
    assert estimate.count("\n") == 1, estimate  # one sentence
    bound = re.search(r"at most (\d+) LLM calls on at most (\d+) items", estimate)
    assert bound is not None, estimate
    paid = re.search(r"LLM in this run: (\d+) paid calls", results["run"][2])
    assert paid is not None, results["run"][2]
    assert 0 < int(paid.group(1)) <= int(bound.group(1))  # the estimate is an upper bound
    with Store.open(project) as store:
        assert 0 < human_label_count(store) <= 60  # --human-budget 60, the simulated operator
    assert "405" in results["status"][1]
    exported = list(csv.DictReader((project / "labels.csv").open(encoding="utf-8")))
    source = list(csv.DictReader((REPO / "examples/support/messages.csv").open(encoding="utf-8")))
    assert [row["id"] for row in exported] == [row["id"] for row in source]


@pytest.mark.parametrize("line", tour_lines())
def test_every_tour_line_is_one_command(line: str) -> None:
    """A line a reader copies on its own works on its own: no continuations, no pipes."""
    assert not line.rstrip().endswith("\\") and "|" not in line.split("#", 1)[0]
