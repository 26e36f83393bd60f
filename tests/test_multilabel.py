"""Multi-label projects (issue 21): set cells on import and in oracle files, the simulated
multi-label LLM and the set labeller, one-vs-rest and per-label routing, the exact-set
estimate, and the job end to end through the CLI on real go_emotions rows."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.app.cli import app
from agent.config import LLMConfig, RoutingConfig
from agent.errors import InputError
from agent.labeller.multi import MultiLabeller, make_set_model
from agent.learn.multilabel import crossfit_proba, fit_ovr, predicted_sets
from agent.llm.multi_sim import SimulatedMultiLLM
from agent.llm.protocol import ChatRequest
from agent.loop.session import LabelingSession
from agent.routing.multi import (
    SetEvidence,
    exact_set_estimate,
    fit_set_thresholds,
    route_set,
    set_confidences,
)
from agent.routing.thresholds import Thresholds
from agent.store.sqlite import Store
from agent.types import LabelSet, decode_label_set, encode_label_set

REPO = Path(__file__).resolve().parents[1]
GO = REPO.parent / "shared" / "datasets" / "go_emotions"
EMOTIONS = LabelSet(("anger", "joy", "sadness", "neutral"))


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def go_rows(n: int, split: str = "dev") -> list[dict[str, str]]:
    with (GO / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        return [row for _, row in zip(range(n), csv.DictReader(handle))]


def ml_project(tmp: Path, labels: Path | None = None) -> Path:
    if labels is None:
        labels = tmp / "labels.json"
        labels.write_text(json.dumps(list(EMOTIONS.names)))
    project = tmp / "proj"
    code, out = invoke("init", project, "--labels", labels, "--multi-label",
                       "--embedding-model", "hashing")  # fmt: skip
    assert code == 0, out
    return project


# ---- the canonical text of a set --------------------------------------------------------
def test_a_set_has_one_text_in_label_set_order() -> None:
    a = encode_label_set(["sadness", "anger"], EMOTIONS)
    assert a == encode_label_set(["anger", "sadness", "anger"], EMOTIONS) == '["anger","sadness"]'
    assert decode_label_set(a) == ("anger", "sadness")
    with pytest.raises(KeyError):
        encode_label_set(["rage"], EMOTIONS)


# ---- import: sets per row, bad sets refused whole -----------------------------------------
def test_init_writes_the_task_and_import_takes_sets_from_csv_jsonl_and_parquet(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    project = ml_project(tmp_path)
    assert json.loads((project / "labelagent.json").read_text())["task"] == "multi_label"
    (tmp_path / "a.csv").write_text("id,text,labels\nc1,so angry and sad,sadness|anger\nc2,ok,\n")
    (tmp_path / "b.jsonl").write_text('{"id": "j1", "text": "yay", "labels": ["joy"]}\n')
    pq.write_table(pa.table({"id": ["p1"], "text": ["meh"], "labels": [["neutral", "joy"]]}),
                   tmp_path / "c.parquet")  # fmt: skip
    for name in ("a.csv", "b.jsonl", "c.parquet"):
        code, out = invoke("import", project, tmp_path / name, "--id-col", "id",
                           "--label-col", "labels")  # fmt: skip
        assert code == 0, out
    with Store.open(project) as store:
        seeds = {r["item_key"]: r["label"] for r in store.annotations(source="import")}
        assert sorted(seeds.values()) == ['["anger","sadness"]', '["joy","neutral"]', '["joy"]']
        assert store.count_items() == 4  # c2 came in without a seed set


def test_export_writes_sets_as_csv_jsonl_and_parquet_by_the_targets_suffix(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    project = ml_project(tmp_path)
    (tmp_path / "a.csv").write_text("id,text,labels\nc1,so angry and sad,sadness|anger\n")
    assert invoke("import", project, tmp_path / "a.csv", "--id-col", "id",
                  "--label-col", "labels")[0] == 0  # fmt: skip
    for name in ("x.csv", "x.jsonl", "x.parquet"):
        code, out = invoke("export", project, tmp_path / name)
        assert code == 0, out
        assert (tmp_path / f"{name}.summary.json").is_file()
    with (tmp_path / "x.csv").open(encoding="utf-8", newline="") as handle:
        assert next(csv.DictReader(handle))["final_labels"] == "anger|sadness"
    line = json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])
    assert line["final_labels"] == ["anger", "sadness"]
    assert pq.read_table(tmp_path / "x.parquet").to_pylist()[0]["final_labels"] == [
        "anger", "sadness"]
    assert not list(tmp_path.glob("*.partial"))


def test_label_sep_splits_csv_cells(tmp_path: Path) -> None:
    project = ml_project(tmp_path)
    (tmp_path / "a.csv").write_text("text,labels\nboth,joy;sadness\n")
    assert invoke("import", project, tmp_path / "a.csv", "--label-col", "labels",
                  "--label-sep", ";")[0] == 0  # fmt: skip
    with Store.open(project) as store:
        assert [r["label"] for r in store.annotations()] == ['["joy","sadness"]']


@pytest.mark.parametrize(
    ("body", "suffix", "message"),
    [
        ("text,labels\nfine,joy\nbad,joy|rage\n", "csv",
         "row 2, field 'labels': label 'rage' is not in"),
        ("text,labels\nbad,joy|joy\n", "csv", "row 1, field 'labels': label 'joy' appears twice"),
        ("text,labels\nbad,joy||anger\n", "csv", "row 1, field 'labels': an empty name inside"),
        ('{"text": "x", "labels": []}\n', "jsonl", "row 1, field 'labels': empty label set"),
        ('{"text": "x", "labels": ["joy", 3]}\n', "jsonl", "labels in a set must be text"),
    ],
)
def test_a_bad_set_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, body: str, suffix: str, message: str
) -> None:
    project = ml_project(tmp_path)
    bad = tmp_path / f"bad.{suffix}"
    bad.write_text(body)
    code, out = invoke("import", project, bad, "--label-col", "labels")
    assert code == 2
    assert message in out and out.count("\n") == 1, out
    with Store.open(project) as store:
        assert store.count_items() == 0


def test_label_sep_is_refused_on_a_single_label_project(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("a\nb\n")
    invoke("init", tmp_path / "p", "--labels", tmp_path / "l.txt", "--embedding-model", "hashing")
    (tmp_path / "a.csv").write_text("text,label\nx,a\n")
    code, out = invoke("import", tmp_path / "p", tmp_path / "a.csv", "--label-sep", ";")
    assert code == 2 and "--label-sep is for multi-label projects" in out


def test_a_bad_oracle_set_stops_the_run_before_any_work(tmp_path: Path) -> None:
    project = ml_project(tmp_path)
    (tmp_path / "a.csv").write_text("id,text\nc1,grr\nc2,yay\n")
    invoke("import", project, tmp_path / "a.csv", "--id-col", "id")
    (tmp_path / "gold.csv").write_text("id,labels\nc1,anger\nc2,joy|glee\n")
    code, out = invoke("run", project, "--llm", "simulated:acc=0.8",
                       "--oracle-file", tmp_path / "gold.csv")  # fmt: skip
    assert code == 2 and "gold.csv, row 2, field 'labels': label 'glee'" in out
    with Store.open(project) as store:
        assert store.annotations() == [] and store.rounds() == []


# ---- the LLM: schema, simulated errors, the labeller --------------------------------------
def test_the_schema_constrains_labels_to_the_set() -> None:
    model = make_set_model(EMOTIONS)
    ok = model.model_validate({"labels": [{"label": "joy", "confidence": 0.9}]})
    assert ok.model_dump()["labels"] == [{"label": "joy", "confidence": 0.9}]
    with pytest.raises(ValueError):
        model.model_validate({"labels": [{"label": "glee", "confidence": 0.9}]})
    enum = model.model_json_schema()["$defs"]["LabelScore"]["properties"]["label"]["enum"]
    assert enum == list(EMOTIONS.names)


def test_the_simulated_llm_hits_its_exact_set_accuracy_with_content_shaped_errors() -> None:
    labels = LabelSet.from_json(json.loads((GO / "labels.json").read_text()))
    rows = go_rows(3000, "train")
    gold = {r["text"]: tuple(r["labels"].split("|")) for r in rows}
    sim = SimulatedMultiLLM(labels, gold, accuracy=0.75, abstain_rate=0.03, seed=1)
    right = missed = added = 0
    by_size = {1: [], 2: []}  # type: dict[int, list[bool]]
    for text, want in gold.items():
        answer = sim.answer(text)
        got = {e["label"] for e in answer["labels"]}
        ok = not answer["abstain"] and got == set(want)
        right += ok
        by_size[min(len(want), 2)].append(ok)
        missed += bool(set(want) - got) and not answer["abstain"]
        added += bool(got - set(want))
    assert 0.70 < right / len(gold) < 0.80
    assert np.mean(by_size[2]) < np.mean(by_size[1]) - 0.1  # multi-label items are harder
    assert missed > 0 and added > 0
    from sklearn.metrics import roc_auc_score

    sure, ok = [], []
    for text, want in gold.items():
        answer = sim.answer(text)
        if not answer["abstain"]:
            sure.append(min(e["confidence"] for e in answer["labels"]))
            ok.append({e["label"] for e in answer["labels"]} == set(want))
    assert 0.65 < roc_auc_score(ok, sure) < 0.9  # informative, far from a perfect flag


def test_the_labeller_asks_once_then_reads_its_cache(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "p", EMOTIONS)
    store.add_items([("a", "I am so angry and sad", None), ("b", "what a day", None)])
    gold = {"I am so angry and sad": ("anger", "sadness"), "what a day": ("neutral",)}
    sim = SimulatedMultiLLM(EMOTIONS, gold, accuracy=1.0, abstain_rate=0.0)
    labeller = MultiLabeller(sim, EMOTIONS, LLMConfig(), store)
    first = labeller.label(store.items())
    assert [d.labels for d in first if d] == [("anger", "sadness"), ("neutral",)]
    assert first[0] is not None and first[0].scores[1] < 0.5 < first[0].scores[0]
    again = labeller.label(store.items())
    assert labeller.calls == 2 and labeller.cache_hits == 2 and again[0] and again[0].cached
    store.close()


def test_the_cache_keeps_answers_at_other_sampling_settings_apart(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "p", EMOTIONS)
    store.add_items([("a", "I am so angry and sad", None), ("b", "what a day", None)])
    gold = {"I am so angry and sad": ("anger", "sadness"), "what a day": ("neutral",)}
    sim = SimulatedMultiLLM(EMOTIONS, gold, accuracy=1.0, abstain_rate=0.0)
    MultiLabeller(sim, EMOTIONS, LLMConfig(temperature=0.0), store).label(store.items())
    for other in (LLMConfig(temperature=0.7), LLMConfig(temperature=0.0, max_tokens=4096)):
        labeller = MultiLabeller(sim, EMOTIONS, other, store)
        labeller.label(store.items())
        assert labeller.calls == 2 and labeller.cache_hits == 0  # asked, not served
    same = MultiLabeller(sim, EMOTIONS, LLMConfig(temperature=0.0), store)
    same.label(store.items())
    assert same.calls == 0 and same.cache_hits == 2
    store.close()


def test_a_failed_call_fails_its_item_alone_and_a_dead_endpoint_stops(tmp_path: Path) -> None:
    from agent.errors import CallFailed
    from agent.llm.scripted import ScriptedBackend

    def reply(request: ChatRequest) -> str | BaseException:
        if "angry" in request.messages[-1]["content"]:
            return CallFailed("server error 503 after 3 retries", kind="http", status=503)
        return '{"labels": [{"label": "neutral", "confidence": 0.9}]}'

    store = Store.create(tmp_path / "p", EMOTIONS)
    store.add_items([("a", "I am so angry", None), ("b", "what a day", None)])
    labeller = MultiLabeller(ScriptedBackend(reply), EMOTIONS, LLMConfig(), store)
    first = labeller.label(store.items())
    assert first[0] is None and first[1] is not None and first[1].labels == ("neutral",)
    backend = ScriptedBackend(reply)
    again = MultiLabeller(backend, EMOTIONS, LLMConfig(), store)
    again.label(store.items())
    assert backend.calls == 1 and again.cache_hits == 1  # the failed item was not cached
    store.close()
    fresh = Store.create(tmp_path / "q", EMOTIONS)  # nothing cached: every call fails
    fresh.add_items([("a", "I am so angry", None), ("b", "what a day", None)])
    dead = ScriptedBackend(lambda r: CallFailed("could not reach the server", kind="connect"))
    with pytest.raises(CallFailed, match="could not reach"):
        MultiLabeller(dead, EMOTIONS, LLMConfig(), fresh).label(fresh.items())
    fresh.close()


def test_an_invalid_reply_is_asked_again_then_given_up(tmp_path: Path) -> None:
    class Stubborn:
        model, supports_json_schema, supports_logprobs = "stubborn", True, False
        def __init__(self) -> None:
            self.seen: list[ChatRequest] = []

        async def complete(self, request: ChatRequest):  # type: ignore[no-untyped-def]
            from agent.llm.protocol import ChatChoice, ChatResponse

            self.seen.append(request)
            return ChatResponse([ChatChoice('{"labels": [{"label": "glee", "confidence": 1}]}')])

        async def aclose(self) -> None: ...

    store = Store.create(tmp_path / "p", EMOTIONS)
    store.add_items([("a", "hm", None)])
    backend = Stubborn()
    labeller = MultiLabeller(backend, EMOTIONS, LLMConfig(max_reasks=1), store)  # type: ignore[arg-type]
    assert labeller.label(store.items()) == [None]
    assert len(backend.seen) == 2 and "invalid" in backend.seen[1].messages[-1]["content"]
    assert asyncio.run(backend.aclose()) is None
    store.close()


# ---- classifier, routing, estimate ---------------------------------------------------------
def test_one_vs_rest_learns_each_label_and_crossfits() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    Y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0), np.zeros(300, bool)], axis=1).astype(np.int8)
    model = fit_ovr(X, Y)
    p = model.predict_proba(X)
    assert ((p[:, :2] > 0.5) == Y[:, :2]).mean() > 0.95
    assert p[:, 2].max() < 0.01  # a label never seen keeps its (smoothed) base rate
    oof = crossfit_proba(X, Y, folds=5)
    assert ((oof[:, :2] > 0.5) == Y[:, :2]).mean() > 0.9
    assert predicted_sets(np.array([[0.2, 0.3, 0.1]])).tolist() == [[0, 1, 0]]


def test_routing_accepts_only_on_certified_thresholds_and_names_the_labels_in_doubt() -> None:
    clf = np.array([0.95, 0.05, 0.9, 0.02])
    llm = np.array([0.97, 0.02, 0.93, 0.02])
    uncertified = route_set(llm, clf, EMOTIONS, 0.85)  # sure and agreed, but nothing measured
    assert not uncertified.auto and uncertified.reason == "set_unsure"
    assert "no thresholds certified" in next(iter(uncertified.doubt.values()))
    p_llm, p_clf = set_confidences(llm, clf)
    assert p_llm == pytest.approx(0.97 * 0.98 * 0.93 * 0.98)
    fitted = Thresholds(p_llm, p_clf, True, 0.95, 40, 40, 40)
    sure = route_set(llm, clf, EMOTIONS, 0.85, fitted)
    assert sure.auto and sure.proposed == ("anger", "sadness")
    missed = route_set(np.array([0.97, 0.02, 0.02, 0.02]), clf, EMOTIONS, 0.85, fitted)
    assert not missed.auto and missed.reason == "disagree" and list(missed.doubt) == ["sadness"]
    shaky = route_set(np.array([0.97, 0.02, 0.7, 0.02]), clf, EMOTIONS, 0.85, fitted)
    assert shaky.reason == "llm_unsure" and "LLM 0.70" in shaky.doubt["sadness"]
    abstain = route_set(None, clf, EMOTIONS, 0.85, fitted)
    assert abstain.reason == "llm_abstain" and abstain.proposed == ("anger", "sadness")


def _evidence(rng: np.random.Generator, m: int) -> tuple[SetEvidence, np.ndarray]:
    """Audits whose LLM sets are right above p_llm 0.7 and at 0.4 below (m,)."""
    p_llm, p_clf = rng.random(m), rng.random(m)
    chance = np.where(p_llm >= 0.7, 1.0, 0.4)
    return SetEvidence(p_llm, p_clf, rng.random(m) < chance), chance


def test_set_thresholds_need_evidence_and_certify_what_the_audits_show() -> None:
    config = RoutingConfig(target_precision=0.9, min_evidence=30)
    rng = np.random.default_rng(0)
    few, _ = _evidence(rng, 20)
    assert not fit_set_thresholds(few, config).accepts_any  # below min_evidence
    evidence, chance = _evidence(rng, 600)
    t = fit_set_thresholds(evidence, config)
    region = (evidence.p_llm >= t.llm) & (evidence.p_clf >= t.clf)
    assert t.accepts_any and t.lower_bound >= 0.9 and chance[region].mean() >= 0.9
    assert region.sum() == t.checked > 150  # most of the sure sets (180 expected above 0.7)
    # The corpus form may accept more: people's answers carry the sets left out.
    loose = fit_set_thresholds(evidence, config, corpus_target=0.8)
    inside = (evidence.p_llm >= loose.llm) & (evidence.p_clf >= loose.clf)
    assert inside.sum() > t.checked and 1.0 - (inside & ~evidence.right).mean() >= 0.8


def test_certified_set_thresholds_hold_their_precision_in_95_percent_of_draws() -> None:
    """The promise behind an auto-accept: with probability >= the level, the certified region
    is right at the target or more (here measured on its true chance, over 60 draws)."""
    config = RoutingConfig(target_precision=0.9, min_evidence=30)
    rng = np.random.default_rng(1)
    held = certified = 0
    for _ in range(60):
        p_llm, p_clf = rng.random(1000), rng.random(1000)
        chance = 0.6 + 0.4 * p_llm  # precision falls smoothly with the LLM's confidence
        t = fit_set_thresholds(SetEvidence(p_llm, p_clf, rng.random(1000) < chance), config)
        if t.accepts_any:
            certified += 1
            grid = np.linspace(0, 1, 2001)  # the true precision of the region, by integration
            held += (0.6 + 0.4 * grid[grid >= t.llm]).mean() >= 0.9
    assert certified >= 50 and held >= 0.95 * certified


def test_the_exact_set_estimate_is_unknown_before_audits_and_covers_after() -> None:
    none = exact_set_estimate(100, 40, None, {}, 0.95)
    assert none["value"] is None and none["low"] == pytest.approx(0.4)
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(40):
        right = rng.random(600) < 0.8  # machine sets, 80 % right
        p = np.clip(0.8 + rng.normal(0, 0.1, 600), 0, 1)
        drawn = rng.choice(600, 80, replace=False)
        audit = {"population": 600, "mean": float(p.mean()), "var": float(p.var()),
                 "draws": [[int(k), "m" if right[k] else "x", float(p[k])] for k in drawn]}
        truth = {int(k): "m" for k in drawn}
        est = exact_set_estimate(1000, 400, audit, truth, 0.95)
        unchecked = np.ones(600, bool)
        unchecked[drawn] = False  # audited sets now carry people's answer
        true = (400 + len(drawn) + right[unchecked].sum()) / 1000
        covered += est["low"] <= true <= est["high"]
    assert covered >= 36  # 95 % nominal over 40 runs


# ---- the library and the job end to end ----------------------------------------------------
def test_the_library_runs_the_multi_label_job_and_gives_sets(tmp_path: Path) -> None:
    from agent.embed import HashingEmbedder

    labels = LabelSet.from_json(json.loads((GO / "labels.json").read_text()))
    rows = go_rows(240)
    texts, gold = [r["text"] for r in rows], {str(i): r["labels"].split("|") for i, r in
                                              enumerate(rows)}  # fmt: skip
    session = LabelingSession.from_texts(texts, labels, multi_label=True,
                                         embedder=HashingEmbedder())  # fmt: skip
    session.backend = SimulatedMultiLLM(labels, {t: tuple(gold[str(i)]) for i, t in
                                                 enumerate(texts)}, accuracy=0.75)  # fmt: skip
    assert session.submit_sets({"0": gold["0"]}) == 1
    with pytest.raises(InputError, match="label 'glee' is not in the label set"):
        session.submit_sets({"1": ["joy", "glee"]})
    report = session.run_sets(rounds=3, batch_size=30, human_budget=100,
                              oracle=lambda i: gold[i])  # fmt: skip
    assert report.rounds == 3 and report.llm_calls == 90
    assert 0 < report.human_labels <= 100 and report.final_audit > 0
    results = session.results()
    assert len(results) == 240 and all(r["final_labels"] for r in results)
    humans = [r for r in results if r["label_status"] == "human"]
    assert len(humans) == report.human_labels + 1  # + the submitted one
    assert all(set(r["final_labels"]) == set(gold[r["id"]]) for r in humans)
    queued = [r for r in results if r["queue_reason"] and r["label_status"] != "human"]
    assert all(r["label_status"] in ("suggested", "auto") for r in queued)
    assert any(r["doubt"] for r in results)  # the queue says which labels were in doubt
    session.close()


def test_single_label_sessions_refuse_the_set_verbs() -> None:
    session = LabelingSession.from_texts(["a"], ["x", "y"])
    with pytest.raises(InputError, match="multi-label sessions"):
        session.submit_sets({"0": ["x"]})
    session.close()


def test_a_replay_file_of_sets_answers_and_a_bad_one_is_refused_first(tmp_path: Path) -> None:
    project = ml_project(tmp_path)
    texts = ["I hate this", "best day ever", "so sad and mad", "it is tuesday"]
    body = "id,text\n" + "".join(f"c{i},{t}\n" for i, t in enumerate(texts))
    (tmp_path / "a.csv").write_text(body)
    invoke("import", project, tmp_path / "a.csv", "--id-col", "id")
    (tmp_path / "bad.csv").write_text("id,labels\nc0,anger\nc1,joy|joy\n")
    code, out = invoke("run", project, "--llm", f"replay:{tmp_path / 'bad.csv'}", "--rounds", "1")
    assert code == 2 and "bad.csv, row 2, field 'labels': label 'joy' appears twice" in out
    (tmp_path / "replay.csv").write_text(
        "id,labels,confidence\nc0,anger,0.9\nc1,joy,0.95\nc2,sadness|anger,0.6\nc3,neutral,0.9\n"
    )
    code, out = invoke("run", project, "--llm", f"replay:{tmp_path / 'replay.csv'}",
                       "--rounds", "1", "--batch-size", "4")  # fmt: skip
    assert code == 0, out
    with Store.open(project) as store:
        votes = {r["item_key"]: r["label"] for r in store.annotations(source="llm", kind="vote")}
        assert sorted(votes.values()) == sorted(
            ['["anger"]', '["joy"]', '["anger","sadness"]', '["neutral"]'])
        shaky = store.queue_views()[3].suggestion  # c2: stated 0.6, not sure enough
        assert shaky["labels"] == ["anger", "sadness"] and "anger" in shaky["doubt"]


def test_audit_f1_gives_micro_macro_and_per_label_figures() -> None:
    from agent.routing.multi import audit_f1

    draws = [('["anger"]', '["anger"]'), ('["anger","joy"]', '["anger"]'),
             ('["neutral"]', '["sadness"]')]  # fmt: skip
    f1 = audit_f1(draws, EMOTIONS)
    assert f1 is not None and f1["audits"] == 3
    assert f1["micro_f1"]["value"] == pytest.approx(2 * 2 / (4 + 3))
    anger = f1["per_label"]["anger"]
    assert (anger["machine"], anger["people"], anger["both"]) == (2, 2, 2)
    # 2 of 2: exact 95 % interval (0.025 ** (1/2), 1)
    assert anger["precision"] == anger["recall"] == pytest.approx(
        {"value": 1.0, "low": 0.025 ** 0.5, "high": 1.0})
    joy = f1["per_label"]["joy"]
    assert joy["precision"]["value"] == 0.0 and joy["recall"] is None
    assert joy["precision"]["low"] == 0.0 and joy["precision"]["high"] == pytest.approx(0.975)
    assert f1["micro_f1"]["low"] <= f1["micro_f1"]["value"] <= f1["micro_f1"]["high"]
    assert audit_f1([], EMOTIONS) is None


@pytest.mark.parametrize("flags", [["--engine", "ray"], ["--ray-address", "ray://x:10001"]])
def test_run_flags_without_a_multi_label_form_are_refused_not_ignored(
    tmp_path: Path, flags: list[str]
) -> None:
    project = ml_project(tmp_path)
    code, out = invoke("run", project, "--llm", "none", *flags)
    assert code == 2 and "is not supported for multi-label projects yet" in out


def test_an_unreachable_endpoint_ends_a_multi_label_run_in_one_line(tmp_path: Path) -> None:
    """The set labeller closes its HTTP clients as the single-label one does: the user sees
    the one error line and nothing after it (no 'Unclosed client session' chatter)."""
    import os
    import subprocess
    import sys

    gold = tmp_path / "g.csv"
    with gold.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([("text", "labels"), ("so happy today", "joy"),
                                      ("this is awful", "anger|sadness")])  # fmt: skip
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(["joy", "anger", "sadness"]), encoding="utf-8")
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "HF_HUB_OFFLINE": "1"}

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "agent.app.cli", *map(str, args)]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    project = tmp_path / "p"
    assert cli("init", project, "--labels", labels, "--multi-label",
               "--embedding-model", "hashing").returncode == 0  # fmt: skip
    assert cli("import", project, gold).returncode == 0
    config = json.loads((project / "labelagent.json").read_text(encoding="utf-8"))
    config.setdefault("llm", {})["max_retries"] = 0
    (project / "labelagent.json").write_text(json.dumps(config), encoding="utf-8")
    result = cli("run", project, "--llm", "openai/x", "--api-base", "http://127.0.0.1:1/v1",
                 "--rounds", "1", "--batch-size", "2")  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "could not reach the server" in lines[-1]
    assert "Unclosed" not in result.stderr + result.stdout and "Traceback" not in result.stderr
