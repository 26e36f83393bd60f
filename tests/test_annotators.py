"""Evaluation annotators: the simulated LLM's accuracy, abstentions, confusions, confidence and
determinism; the replay annotator's matching; spec strings; both through the Labeller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.config import LLMConfig
from agent.errors import ConfigError
from agent.labeller.labeller import Labeller
from agent.labeller.prompts import PromptSet
from agent.llm.annotators import ReplayLLM, SimulatedLLM, confusion_weights, make_annotator
from agent.llm.protocol import ChatBackend, ChatRequest
from agent.types import Item, LabelSet, text_hash

# Six labels in three confusable pairs: (0,1), (2,3), (4,5).
LABELS = LabelSet(tuple(f"c{i}" for i in range(6)))
_BASE = np.eye(3)
EMBEDDINGS = np.vstack([_BASE[i // 2] + 0.15 * np.eye(6)[i, :3] for i in range(6)])
PAIR = np.array([1, 0, 3, 2, 5, 4])
PROMPTS = PromptSet.load()


def gold_set(n: int) -> dict[str, str]:
    return {f"text number {i}": f"c{i % 6}" for i in range(n)}


def ask(backend: SimulatedLLM | ReplayLLM, texts: list[str]) -> list[str | None]:
    """Label texts one call each, straight through the backend (no Labeller)."""
    labeller = Labeller(backend, LABELS, LLMConfig(samples=1, concurrency=64), None)
    items = [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(texts)]
    return [d.label for d in labeller.label_items_sync(items)]


def test_simulated_llm_is_a_chat_backend_with_logprobs() -> None:
    sim = SimulatedLLM(LABELS, gold_set(6), accuracy=0.9)
    assert isinstance(sim, ChatBackend) and sim.supports_logprobs and sim.supports_json_schema


def test_accuracy_abstentions_and_confusable_errors_over_thousands_of_items() -> None:
    gold = gold_set(3000)
    sim = SimulatedLLM(LABELS, gold, 0.8, 0.05, seed=3, label_embeddings=EMBEDDINGS)
    texts = list(gold)
    labels = ask(sim, texts)
    truth = np.array([LABELS.index(gold[t]) for t in texts])
    answered = np.array([lab is not None for lab in labels])
    got = np.array([LABELS.index(lab) if lab is not None else -1 for lab in labels])
    assert abs(np.mean(got == truth) - 0.80) < 0.03
    assert abs(1 - answered.mean() - 0.05) < 0.015
    wrong = answered & (got != truth)
    to_pair = np.mean(got[wrong] == PAIR[truth[wrong]])
    assert to_pair > 0.8  # uniform noise would send 1/5 of errors to the paired class


def test_stated_confidence_is_informative_but_overconfident() -> None:
    gold = gold_set(2000)
    sim = SimulatedLLM(LABELS, gold, 0.7, 0.0, seed=1)
    labeller = Labeller(sim, LABELS, LLMConfig(samples=1, concurrency=64), None)
    items = [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(gold)]
    decisions = labeller.label_items_sync(items)
    assert {d.confidence_method for d in decisions} == {"logprob"}
    right = np.array([d.label == gold[it.text] for d, it in zip(decisions, items)])
    conf = np.array([d.confidence for d in decisions])
    assert np.allclose(conf, [d.usage["stated_confidence"] for d in decisions], atol=1e-3)
    assert conf[right].mean() > conf[~right].mean() + 0.1
    assert conf.mean() > right.mean()  # overconfident, like an uncalibrated LLM


def test_answers_are_deterministic_per_seed_and_text_whatever_the_batching() -> None:
    gold = gold_set(60)
    texts = list(gold)
    one = ask(SimulatedLLM(LABELS, gold, 0.5, 0.1, seed=7), texts)
    batched = Labeller(
        SimulatedLLM(LABELS, gold, 0.5, 0.1, seed=7),
        LABELS,
        LLMConfig(samples=1, items_per_call=7),
        None,
    )
    items = [Item(i, str(i), t, text_hash(t)) for i, t in enumerate(reversed(texts))]
    again = [d.label for d in batched.label_items_sync(items)][::-1]
    assert one == again
    assert one != ask(SimulatedLLM(LABELS, gold, 0.5, 0.1, seed=8), texts)


def test_unknown_texts_are_abstained_on() -> None:
    assert ask(SimulatedLLM(LABELS, gold_set(6), 1.0), ["never seen"]) == [None]


def test_simulated_samples_vary_so_self_consistency_is_meaningful() -> None:
    gold = gold_set(30)
    sim = SimulatedLLM(LABELS, gold, 0.6, 0.0, seed=0)
    request = ChatRequest(PROMPTS.messages(LABELS, ["text number 4"], []), n=20)
    import asyncio

    response = asyncio.run(sim.complete(request))
    assert len(response.choices) == 20
    assert len({c.text for c in response.choices}) > 1
    assert response.cost_usd == 0 and response.usage.prompt_tokens > 100


def test_confusion_weights_rows_sum_to_one_and_skip_gold() -> None:
    for weights in (
        confusion_weights(6, label_embeddings=EMBEDDINGS),
        confusion_weights(6, confusion=np.arange(36.0).reshape(6, 6)),
        confusion_weights(6),
    ):
        assert np.allclose(weights.sum(axis=1), 1) and np.all(np.diag(weights) == 0)
    with pytest.raises(ConfigError):
        confusion_weights(6, confusion=np.ones((5, 5)))


def test_replay_matches_by_text_and_abstains_outside_the_set(tmp_path: Path) -> None:
    path = tmp_path / "llm.csv"
    path.write_text(
        'text,label\n"hello, world",c1\nsecond,abstain\nthird,c5\n"multi\nline",c2\n',
        encoding="utf-8",
    )
    replay = make_annotator(f"replay:{path}", LABELS)
    assert isinstance(replay, ReplayLLM)
    got = ask(replay, ["hello, world", "second", "third", "missing", "multi\nline"])
    assert got == ["c1", None, "c5", None, "c2"]


def test_replay_confidence_column_becomes_the_logprob_confidence(tmp_path: Path) -> None:
    path = tmp_path / "llm.csv"
    path.write_text("text,label,confidence\na,c0,0.6\nb,c1,\n", encoding="utf-8")
    labeller = Labeller(ReplayLLM(path, LABELS), LABELS, LLMConfig(samples=1), None)
    items = [Item(i, str(i), t, text_hash(t)) for i, t in enumerate("ab")]
    a, b = labeller.label_items_sync(items)
    assert a.confidence == pytest.approx(0.6) and b.confidence == pytest.approx(1.0)


def test_replay_keyed_by_id_answers_through_the_projects_texts(tmp_path: Path) -> None:
    path = tmp_path / "llm.csv"
    path.write_text("id,label\nm1,c1\nm2,c3\nunknown,c0\n", encoding="utf-8")
    replay = make_annotator(f"replay:{path}", LABELS, texts_by_id={"m1": "one", "m2": "two"})
    assert ask(replay, ["one", "two", "three"]) == ["c1", "c3", None]
    with pytest.raises(ConfigError, match="keyed by id"):
        ReplayLLM(path, LABELS)  # without the project's texts an id means nothing


def test_replay_rejects_files_without_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sentence,answer\nx,c0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="text,label"):
        ReplayLLM(path, LABELS)
    with pytest.raises(ConfigError, match="not found"):
        ReplayLLM(tmp_path / "nope.csv", LABELS)


def test_spec_strings() -> None:
    sim = make_annotator("simulated:acc=0.85,abstain=0.03,seed=4", LABELS, gold=gold_set(6))
    assert isinstance(sim, SimulatedLLM)
    assert (sim.accuracy, sim.abstain_rate, sim.seed) == (0.85, 0.03, 4)
    assert sim.model == "simulated:acc=0.85,abstain=0.03,seed=4"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("simulated:acc=0.85,noise=2", "known keys"),
        ("simulated:acc=high", "not a number"),
        ("simulated:abstain=0.1", "lacks acc"),
        ("simulated:acc=0.9,abstain=0.2", "exceeds 1"),
        ("simulated:acc=0.9,seed=1.5", "integer"),
        ("oracle:acc=1", "unknown annotator"),
        ("replay:", "unknown annotator"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_annotator(spec, LABELS, gold=gold_set(6))


def test_simulated_needs_gold_in_the_label_set() -> None:
    with pytest.raises(ConfigError, match="needs gold"):
        make_annotator("simulated:acc=0.9", LABELS)
    with pytest.raises(ConfigError, match="outside the label set"):
        SimulatedLLM(LABELS, {"x": "nope"}, 0.9)
