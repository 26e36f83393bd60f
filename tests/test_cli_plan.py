"""`run` and `estimate` before any work (issue 16, items 4 and 5): refusals that name the flag or
command that fixes them, oracle and replay files keyed by id or by text, and `estimate` priced
for the plan a run's flags describe, as JSON on a clean stdout.

Real projects on disk (hashing embedder, so a run takes seconds) driven through typer's
CliRunner; the database digest shows that a refusal wrote nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fault_kit import db_digest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.store.sqlite import DB_FILE, Store
from agent.types import LabelSet

LABELS = ("refund", "card_lost", "other")
TEXTS = {
    "refund": ["where is my refund {}", "money back for order {}", "refund not received {}"],
    "card_lost": ["lost my card on bus {}", "card stolen yesterday {}", "cannot find my card {}"],
    "other": ["what are your hours {}", "do you ship to Spain {}", "change my address {}"],
}


def invoke(*args: object) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


def gold_rows(n_per_text: int = 3) -> list[tuple[str, str, str]]:
    """(id, text, gold label): 9 templates x `n_per_text` distinct texts."""
    rows = []
    for label, templates in TEXTS.items():
        for t, template in enumerate(templates):
            for k in range(n_per_text):
                rows.append((f"q{label[:2]}{t}{k}", template.format(k), label))
    return rows


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A hashing-embedder project with 27 items imported by id, no labels."""
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.csv"
    lines = ["id,text"] + [f"{i},{text}" for i, text, _ in gold_rows()]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    folder = tmp_path / "proj"
    assert invoke("init", folder, "--labels", tmp_path / "labels.txt",
                  "--embedding-model", "hashing")[0] == 0  # fmt: skip
    assert invoke("import", folder, corpus, "--id-col", "id")[0] == 0
    return folder


def write(path: Path, header: str, rows: list[tuple[str, ...]]) -> Path:
    """A CSV with `header` and `rows` (cells quoted)."""
    body = "".join(",".join(f'"{cell}"' for cell in row) + "\n" for row in rows)
    path.write_text(header + "\n" + body, encoding="utf-8")
    return path


def refused(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# ---- refusals before any work ----------------------------------------------------------------
def test_a_simulated_llm_without_gold_names_the_flag(project: Path) -> None:
    before = db_digest(project / DB_FILE)
    code, _, err = invoke("run", project, "--llm", "simulated:acc=0.85", "--rounds", "1")
    refused(code, err, "--oracle-file FILE")
    assert db_digest(project / DB_FILE) == before  # nothing embedded, no round started


def test_a_bad_simulated_spec_is_refused_before_the_project_opens(project: Path) -> None:
    code, _, err = invoke("run", project, "--llm", "simulated:acc=0.8,noise=1",
                          "--oracle-file", project / "x.csv")  # fmt: skip
    refused(code, err, "noise=1", "known keys")


def test_an_empty_project_is_refused_with_the_command_to_run(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    folder = tmp_path / "empty"
    assert invoke("init", folder, "--labels", tmp_path / "labels.txt")[0] == 0
    for command in (["run", folder, "--rounds", "1"], ["estimate", folder, "--llm", "x/y"]):
        code, out, err = invoke(*command)
        refused(code, err, f"labelagent import {folder} FILE")
        assert out == ""


def test_an_oracle_file_matching_under_half_the_ids_is_refused(
    project: Path, tmp_path: Path
) -> None:
    rows = gold_rows()
    oracle = write(tmp_path / "gold.csv", "id,label",  # 13 of 27 ids match: under half
                   [(i, g) for i, _, g in rows[:13]] + [(f"x{i}", g) for i, _, g in rows[13:]])
    before = db_digest(project / DB_FILE)
    code, _, err = invoke("run", project, "--llm", "none", "--oracle-file", oracle)
    refused(code, err, "matches 13 of the project's 27 items by id", "--id-col")
    assert db_digest(project / DB_FILE) == before


def test_a_replay_file_matching_under_half_the_items_is_refused(
    project: Path, tmp_path: Path
) -> None:
    replay = write(tmp_path / "llm.csv", "text,label", [("never imported", "refund")])
    code, _, err = invoke("run", project, "--llm", f"replay:{replay}")
    refused(code, err, "replay file matches 0 of the project's 27 items by text")


@pytest.mark.parametrize(
    ("flag", "header", "rows", "fragments"),
    [
        ("--oracle-file", "id,label", [("qre00", "refund"), ("", "other")],
         ("row 2", "field 'id'", "empty id")),
        ("--oracle-file", "id,label", [("qre00", "refundd")], ("row 1", "field 'label'")),
        ("--oracle-file", "ident,answer", [("qre00", "refund")], ("id,label or text,label",)),
        ("--llm", "text,label,confidence", [("where is my refund 0", "refund", "high")],
         ("row 1", "field 'confidence'", "not a number")),
    ],
)  # fmt: skip
def test_bad_rows_of_answer_files_name_file_row_and_field(
    project: Path, tmp_path: Path, flag: str, header: str, rows: list[tuple[str, ...]],
    fragments: tuple[str, ...],
) -> None:  # fmt: skip
    path = write(tmp_path / "answers.csv", header, rows)
    value = f"replay:{path}" if flag == "--llm" else str(path)
    extra = [] if flag == "--llm" else ["--llm", "none"]
    code, _, err = invoke("run", project, flag, value, *extra, "--rounds", "1")
    refused(code, err, str(path), *fragments)


# ---- oracle and replay files take the same keys ----------------------------------------------
def _votes(project: Path, source: str) -> dict[str, str | None]:
    """Project id -> the label `source` gave it."""
    with Store.open(project) as store:
        ids = {it.key: it.id for batch in store.iter_items() for it in batch}
        return {ids[row["item_key"]]: row["label"] for row in store.annotations(source=source)}


@pytest.mark.parametrize("key", ["id", "text"])
def test_oracle_and_replay_files_match_by_id_or_by_text(
    project: Path, tmp_path: Path, key: str
) -> None:
    rows = gold_rows()
    gold = {i: g for i, _, g in rows}
    pick = (lambda i, t: i) if key == "id" else (lambda i, t: t)
    wrong = {"refund": "other", "card_lost": "refund", "other": "card_lost"}
    oracle = write(tmp_path / "gold.csv", f"{key},label", [(pick(i, t), g) for i, t, g in rows])
    # the replayed LLM is wrong on every item, so its votes cannot be mistaken for gold
    replay = write(tmp_path / "llm.csv", f"{key},label,confidence",
                   [(pick(i, t), wrong[g], "0.9") for i, t, g in rows])  # fmt: skip
    code, _, err = invoke("run", project, "--llm", f"replay:{replay}", "--oracle-file", oracle,
                          "--rounds", "2", "--batch-size", "6", "--human-budget", "8")  # fmt: skip
    assert code == 0, err
    humans, llm = _votes(project, "human"), _votes(project, "llm")
    assert humans and all(label == gold[i] for i, label in humans.items())
    assert llm and all(label == wrong[gold[i]] for i, label in llm.items())


# ---- estimate prices the plan ----------------------------------------------------------------
def estimate_json(project: Path, *flags: object) -> dict[str, object]:
    code, out, err = invoke("estimate", project, *flags, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_estimate_prices_the_runs_plan_not_every_row(project: Path) -> None:
    model = ("--llm", "openai/gpt-4o-mini")
    planned = estimate_json(project, *model, "--rounds", "2", "--batch-size", "5")
    assert (planned["items"], planned["calls"], planned["upper_bound"]) == (10, 10, True)
    assert planned["limited_by"] == "2 rounds of at most 5"
    assert planned["plan"] == {"rounds": 2, "batch_size": 5, "human_budget": None,
                               "llm_budget": None, "target_accuracy": None}  # fmt: skip
    everything = estimate_json(project, *model)  # 10 rounds of 50 > 27 items
    assert everything["items"] == 27 and "27 items without a label" in str(
        everything["limited_by"]
    )
    budget = estimate_json(project, *model, "--llm-budget", "4")
    assert budget["items"] == 4 and "LLM budget" in str(budget["limited_by"])
    assert 0 < float(budget["cost_usd"]) < float(everything["cost_usd"])  # type: ignore[arg-type]


def test_estimate_caps_rounds_at_the_probe_while_the_llm_cannot_be_trusted(
    tmp_path: Path,
) -> None:
    with Store.create(tmp_path / "big", LabelSet(LABELS)) as store:
        store.add_items([(f"i{n}", f"message number {n}", None) for n in range(400)])
    flags = ("--llm", "openai/gpt-4o-mini", "--rounds", "2", "--batch-size", "300")
    assert estimate_json(tmp_path / "big", *flags)["items"] == 400
    few_audits = estimate_json(tmp_path / "big", *flags, "--human-budget", "5")
    assert few_audits["items"] == 320  # 2 rounds of routing.llm_probe (160)


def test_estimate_json_is_clean_for_a_model_litellm_does_not_know(project: Path) -> None:
    info = estimate_json(project, "--llm", "nosuchprovider/mystery-model-7", "--rounds", "1")
    assert info["cost_usd"] is None and "cost map" in str(info["note"])
    assert info["items"] == info["calls"] == 27  # 1 round of 50, capped by the 27 items


def test_estimate_says_one_sentence_with_what_bounds_it(project: Path) -> None:
    code, out, err = invoke("estimate", project, "--llm", "simulated:acc=0.85", "--rounds",
                            "3", "--batch-size", "4")  # fmt: skip
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("simulated:acc=0.85: at most 12 LLM calls")
    assert "$0.0000" in out and "fewer when" in out
