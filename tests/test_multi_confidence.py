"""Multi-label confidence per label (issue 21), over real HTTP to the OpenAI-compatible test
server: each label's P(in the set) from the token log-probabilities of the names in the
answer, else the share of samples whose set holds it, else the stated word; the method kept
with the decision; every paid call (each sample too) cached under a key of its own."""

from __future__ import annotations

import json
import math
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from llm_fixtures import make_test_backend

from agent.config import LLMConfig
from agent.labeller.multi import MultiLabeller, SetDecision
from agent.labeller.set_tokens import named_by, slot_chances
from agent.llm.protocol import ChatBackend, TokenLogprob
from agent.llm.test_server import LLMTestServer
from agent.store.sqlite import Store
from agent.types import LabelSet

EMOTIONS = LabelSet(("anger", "joy", "sadness", "neutral"))
TEXT = "I am furious and heartbroken"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic chatter


def answer(*names: str, stated: float = 0.95, considered: tuple[str, ...] = ()) -> str:
    return json.dumps({
        "labels": [{"label": n, "confidence": stated} for n in names],
        "considered": [{"label": n, "confidence": 0.4} for n in considered],
        "abstain": False, "rationale": "r",
    })  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.create(tmp_path / "p", EMOTIONS)
    store.add_items([("a", TEXT, None)])
    return store


def label_one(backend: ChatBackend, store: Store, cfg: LLMConfig) -> tuple[MultiLabeller,
                                                                          SetDecision]:
    labeller = MultiLabeller(backend, EMOTIONS, cfg, store)
    (decision,) = labeller.label(store.items())
    assert decision is not None
    return labeller, decision


def scores(decision: SetDecision) -> dict[str, float]:
    return dict(zip(EMOTIONS.names, decision.scores))


@pytest.mark.parametrize("adapter", ["openai", "litellm"])
def test_label_scores_come_from_the_tokens_that_name_them(
    llm_server: LLMTestServer, store: Store, adapter: str
) -> None:
    """The server writes anger at P 0.8 and sadness at 0.6, each slot's rest spread over the
    other labels (top 5 alternatives). The stated 0.95 is not used: anger is 0.8 plus its
    chance of the sadness slot, joy and neutral only their chances of the two slots."""
    llm_server.policy = lambda body: answer("anger", "sadness", considered=("joy",))
    llm_server.knobs.label_probs = {"anger": 0.8, "sadness": 0.6}
    backend = make_test_backend(adapter, llm_server.base_url)
    _, decision = label_one(backend, store, LLMConfig())
    body = llm_server.stats.bodies[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body.get("n", 1) == 1
    assert decision.method == "logprob" and decision.labels == ("anger", "sadness")
    expected = {"anger": 0.8 + 0.4 / 3, "joy": 0.2 / 3 + 0.4 / 3, "sadness": 0.6 + 0.2 / 3,
                "neutral": 0.2 / 3 + 0.4 / 3}  # fmt: skip
    assert scores(decision) == pytest.approx(expected)


def test_a_shaky_written_label_stays_in_the_set_and_shows_its_doubt(
    llm_server: LLMTestServer, store: Store
) -> None:
    llm_server.policy = lambda body: answer("anger", "sadness")
    llm_server.knobs.label_probs = {"anger": 0.6, "sadness": 0.3}
    _, decision = label_one(make_test_backend("openai", llm_server.base_url), store, LLMConfig())
    assert decision.labels == ("anger", "sadness")
    assert scores(decision)["sadness"] == pytest.approx(0.51)  # in the set, barely
    assert scores(decision)["anger"] == pytest.approx(0.6 + 0.7 / 3)


def test_a_reply_without_logprobs_falls_back_to_the_stated_word_and_says_so(
    llm_server: LLMTestServer, store: Store
) -> None:
    llm_server.policy = lambda body: answer("anger", stated=0.9)
    llm_server.knobs.logprobs = False
    _, decision = label_one(make_test_backend("openai", llm_server.base_url), store, LLMConfig())
    assert decision.method == "stated" and decision.note["stated_only"]
    assert "no label logprobs" in decision.note["confidence_note"]
    assert scores(decision) == pytest.approx({"anger": 0.9, "joy": 0.02, "sadness": 0.02,
                                              "neutral": 0.02})  # fmt: skip


def test_an_answer_paid_for_before_logprobs_were_read_is_not_paid_again(
    llm_server: LLMTestServer, store: Store
) -> None:
    """A stated answer in the cache (from a run with logprobs off) serves a run that reads
    logprobs: no call, scored by its stated word and flagged; a new item is asked with them."""
    llm_server.policy = lambda body: answer("anger", stated=0.9)
    backend = make_test_backend("openai", llm_server.base_url)
    label_one(backend, store, LLMConfig(samples=1, logprobs="never"))
    reader, decision = label_one(backend, store, LLMConfig(samples=1))
    assert reader.method == "logprob" and reader.calls == 0 and llm_server.stats.requests == 1
    assert decision.method == "stated" and decision.cached and scores(decision)["anger"] == 0.9
    store.add_items([("b", "what a lovely surprise", None)])
    fresh = MultiLabeller(backend, EMOTIONS, LLMConfig(samples=1), store)
    _, new = fresh.label(store.items())
    assert fresh.calls == 1 and new is not None and new.method == "logprob"


def cycling(*sets: tuple[str, ...]) -> Any:
    turns = count()

    def policy(body: dict[str, Any]) -> str:
        chosen = sets[next(turns) % len(sets)]
        if not chosen:
            return json.dumps({"labels": [], "abstain": True, "rationale": "cannot tell"})
        return answer(*chosen)

    return policy


FIVE = (("anger", "sadness"), ("anger",), ("anger", "sadness"), ("anger", "joy"), ())


def test_without_logprobs_the_share_of_samples_holding_a_label_is_its_score(
    llm_server: LLMTestServer, store: Store
) -> None:
    """Five samples in one call (n=5) at the sampling temperature: anger is in four sets,
    sadness in two, joy in one, and the abstaining sample counts against every label."""
    llm_server.policy = cycling(*FIVE)
    backend = make_test_backend("openai", llm_server.base_url, supports_logprobs=False)
    labeller, decision = label_one(backend, store, LLMConfig(samples=5))
    (body,) = llm_server.stats.bodies
    assert body["n"] == 5 and body["temperature"] == 0.7 and "logprobs" not in body
    assert decision.method == "consistency" and decision.labels == ("anger",)
    assert scores(decision) == pytest.approx({"anger": 0.8, "joy": 0.2, "sadness": 0.4,
                                              "neutral": 0.0})  # fmt: skip
    assert decision.note == {"samples": 5, "answered": 4} and labeller.calls == 1
    again, cached = label_one(backend, store, LLMConfig(samples=5))
    assert llm_server.stats.requests == 1 and again.cache_hits == 1 and cached.cached
    assert cached.scores == decision.scores


def test_each_sample_is_a_counted_call_cached_apart_and_never_paid_twice(
    llm_server: LLMTestServer, store: Store
) -> None:
    """A server that answers one choice whatever `n` asks: each sample is a call of its own,
    each cached under its own key; a later run that wants more samples pays only for the
    missing ones, and a stated run is another question (asked, not served from a sample)."""
    llm_server.policy = cycling(*FIVE)
    llm_server.knobs.ignore_n = True
    backend = make_test_backend("openai", llm_server.base_url, supports_logprobs=False)
    three, decision = label_one(backend, store, LLMConfig(samples=3))
    # `n` asked, then what is left: each call's one sample is cached under its own key
    assert [b.get("n", 1) for b in llm_server.stats.bodies] == [3, 2, 1]
    assert llm_server.stats.requests == three.calls == 3 and store.cache_totals()["calls"] == 3
    assert decision.labels == ("anger", "sadness") and decision.note["samples"] == 3
    five, more = label_one(backend, store, LLMConfig(samples=5))
    assert llm_server.stats.requests == 5 and five.calls == 2 and not more.cached
    assert scores(more)["anger"] == pytest.approx(0.8) and more.labels == ("anger",)
    stated, _ = label_one(backend, store, LLMConfig(samples=1))
    assert stated.calls == 1 and llm_server.stats.requests == 6 and stated.method == "stated"


def test_samples_that_agree_on_no_label_are_an_abstain(
    llm_server: LLMTestServer, store: Store
) -> None:
    llm_server.policy = cycling(("anger",), ("joy",), ("sadness",))
    backend = make_test_backend("openai", llm_server.base_url, supports_logprobs=False)
    labeller = MultiLabeller(backend, EMOTIONS, LLMConfig(samples=3), store)
    (decision,) = labeller.label(store.items())
    assert decision is not None and decision.labels is None
    assert scores(decision) == pytest.approx({"anger": 1 / 3, "joy": 1 / 3, "sadness": 1 / 3,
                                              "neutral": 0.0})  # fmt: skip


def test_logprobs_never_in_the_config_samples_instead(
    llm_server: LLMTestServer, store: Store
) -> None:
    llm_server.policy = cycling(("anger",))
    backend = make_test_backend("openai", llm_server.base_url)
    labeller, decision = label_one(backend, store, LLMConfig(samples=2, logprobs="never"))
    assert labeller.method == decision.method == "consistency"
    assert "logprobs" not in llm_server.stats.bodies[0]


# ---- the token arithmetic, on hand-made tokens -------------------------------------------
def test_a_slot_credits_a_label_its_alternative_token_begins() -> None:
    """Tokens `"` + `sad` + `ness"`: the written label is the product of its tokens; the
    alternatives of its first token name `joy` whole and `neu` (the one label it begins);
    `dis` begins two labels, so it names neither."""
    names = ("joy", "sadness", "neutral", "disgust", "disapproval")
    text = '{"labels": [{"label": "sadness"}]}'
    pieces = [('{"labels": [{"label": "', 0.0, []),
              ("sad", -0.1, [("sad", -0.1), ("joy", -2.0), ("neu", -3.0), ("dis", -1.0)]),
              ('ness"}]}', -0.05, [])]  # fmt: skip
    tokens = [TokenLogprob(t, lp, top) for t, lp, top in pieces]
    chances = slot_chances(text, tokens, ["sadness"], names)
    assert chances is not None
    assert chances["sadness"] == pytest.approx(math.exp(-0.15))
    assert chances["joy"] == pytest.approx(math.exp(-2.0))
    assert chances["neutral"] == pytest.approx(math.exp(-3.0))
    assert "disgust" not in chances and "disapproval" not in chances
    assert slot_chances(text, tokens, ["joy"], names) is None  # the slots name another set
    assert slot_chances(text + " ", tokens, ["sadness"], names) is None  # tokens miss text
    assert named_by('joy"', names) == "joy" and named_by("dis", names) is None


def test_the_simulated_llm_spells_its_stated_chances_in_token_logprobs(tmp_path: Path) -> None:
    """The simulated multi-label LLM answers logprobs as the single-label annotators do, so
    runs with it read the logprob path and get the chances it states, label for label."""
    from agent.llm.multi_sim import SimulatedMultiLLM

    gold = {f"text {i}": (("anger", "sadness"), ("joy",), ("neutral",))[i % 3] for i in range(60)}
    store = Store.create(tmp_path / "s", EMOTIONS)
    store.add_items([(str(i), t, None) for i, t in enumerate(gold)])
    sim = SimulatedMultiLLM(EMOTIONS, gold, accuracy=0.6, abstain_rate=0.0)
    read = MultiLabeller(sim, EMOTIONS, LLMConfig(), store).label(store.items())
    said = MultiLabeller(sim, EMOTIONS, LLMConfig(samples=1, logprobs="never"),
                         store).label(store.items())  # fmt: skip
    assert {d.method for d in read if d} == {"logprob"} and {d.method for d in said if d} == {
        "stated"}  # fmt: skip
    assert [d and d.labels for d in read] == [d and d.labels for d in said]
    assert all(a and b and a.scores == pytest.approx(b.scores) for a, b in zip(read, said))
    considered = [d for d in said if d and any(0.02 < s < 0.5 for s in d.scores)]
    assert considered  # left-out labels with a chance of their own reach the logprob path too


def test_the_set_schema_sent_is_strict_structured_output(
    llm_server: LLMTestServer, store: Store
) -> None:
    """Strict structured output (OpenAI's `strict: true`) refuses a schema with an open object,
    an optional field or a `$ref`: every object the set schema holds is closed, with all its
    fields required, and the label names are an enum of the project's labels."""
    llm_server.policy = lambda body: answer("joy")
    label_one(make_test_backend("openai", llm_server.base_url), store, LLMConfig())
    sent = llm_server.stats.bodies[0]["response_format"]["json_schema"]
    assert sent["strict"] is True and "$ref" not in json.dumps(sent) and "$defs" not in sent

    def objects(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, list):
            return [o for child in node for o in objects(child)]
        if not isinstance(node, dict):
            return []
        found = [node] if "properties" in node else []
        return found + [o for child in node.values() for o in objects(child)]

    schema_objects = objects(sent["schema"])
    assert len(schema_objects) == 3  # the answer, a given label, a considered label
    for obj in schema_objects:
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    entry = sent["schema"]["properties"]["labels"]["items"]["properties"]["label"]
    assert entry["enum"] == list(EMOTIONS.names)
