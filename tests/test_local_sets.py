"""`--llm local` on multi-label items (issue 21): each label scored yes or no, P(yes) per label,
its content-free prior taken out, the reply read by the set labeller as token logprobs. The
arithmetic runs on a tiny fake logits function, so no model is needed; the real model's run is
in test_local_llm.py (marked `local`)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from agent.config import LLMConfig
from agent.labeller.answers import make_answer_model, strict_schema
from agent.labeller.multi import MultiLabeller, make_set_model
from agent.llm.local import LocalBackend
from agent.llm.local_sets import ENDINGS, label_probabilities, p_yes, set_labels
from agent.store.sqlite import Store
from agent.types import LabelSet

EMOTIONS = LabelSet(("anger", "joy", "sadness", "neutral"),
                    ("the text is angry", "the text is happy", "the text is sad", "no emotion"))
HABIT = 1.5  # the fake model leans to "yes" whatever it reads


def fake_logits(prompt: str, endings: list[str]) -> list[float]:
    """Summed log-probabilities of " yes" and " no": yes is likelier where the label's name is
    in the text, and always HABIT likelier than it should be."""
    assert endings == ENDINGS
    head, label = prompt.split("\n")[:2]
    name = label.removeprefix("Label: ").split(":")[0]
    yes = (2.0 if name in head else -1.0) + HABIT
    return [yes - math.log1p(math.exp(yes)), -math.log1p(math.exp(yes))]


def fake_prior(empty: str) -> list[float]:
    yes, no = fake_logits(empty, ENDINGS)
    top = max(yes, no)
    total = math.log(math.exp(yes - top) + math.exp(no - top)) + top
    return [yes - total, no - total]


def test_p_yes_is_the_softmax_over_yes_and_no_less_the_content_free_prior() -> None:
    prompt = "Text: so much anger here\nLabel: anger: the text is angry\nDoes it? Answer:"
    raw = 1.0 / (1.0 + math.exp(-(2.0 + HABIT)))
    assert p_yes(fake_logits, prompt) == pytest.approx(raw)
    # prior: N/A reads as yes -1 + HABIT; taking it out leaves logit 2 - (-1) = 3
    assert p_yes(fake_logits, prompt, fake_prior) == pytest.approx(1.0 / (1.0 + math.exp(-3.0)))
    lines = ["- anger: the text is angry", "- joy: the text is happy"]
    habit = label_probabilities(fake_logits, "angry? no, pure joy", lines)
    assert all(p > 0.5 for p in habit)  # the habit says yes to both...
    fair = label_probabilities(fake_logits, "pure joy", lines, fake_prior)
    assert fair[0] == pytest.approx(0.5) and fair[1] > 0.9  # ...the prior takes it out


def test_the_set_schema_is_told_from_the_single_label_one() -> None:
    assert set_labels(make_set_model(EMOTIONS).model_json_schema()) == list(EMOTIONS.names)
    sent = strict_schema(make_set_model(EMOTIONS).model_json_schema())  # as the labeller sends
    assert set_labels(sent) == list(EMOTIONS.names)
    assert set_labels(make_answer_model(EMOTIONS).model_json_schema()) is None


class FakeLocal(LocalBackend):
    """The local backend with the fake logits function in place of llama.cpp."""

    def __init__(self) -> None:  # no model to load
        self.model, self.path, self.api_base, self.key_env = "local/fake", "fake.gguf", None, None
        self._lock, self._prior, self.calibrate = threading.Lock(), {}, True
        self.calls, self.busy_s, self.scored = 0, 0.0, []

    def score(self, prompt: str, endings: list[str]) -> tuple[list[float], tuple[int, int]]:
        self.scored.append(prompt)
        return fake_logits(prompt, endings), (len(prompt) // 4, 2)


def test_a_multi_label_item_gets_p_yes_per_label_through_the_labeller(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "p", EMOTIONS)
    store.add_items([("a", "anger and sadness, all day", None), ("b", "a quiet tuesday", None)])
    backend = FakeLocal()
    labeller = MultiLabeller(backend, EMOTIONS, LLMConfig(model="local"), store)
    both, quiet = labeller.label(store.items())
    assert both is not None and quiet is not None
    assert labeller.method == both.method == "logprob" and backend.calls == 2
    yes = 1.0 / (1.0 + math.exp(-3.0))  # a named label, the prior out
    assert both.labels == ("anger", "sadness")
    # an unnamed label reads as the content-free prompt does: P(yes) 0.5, left out
    assert both.scores == pytest.approx((yes, 0.49, yes, 0.49))
    assert "Label: anger: the text is angry" in backend.scored[0]  # descriptions from the prompt
    # no yes likelier than its no: the likeliest label (the first of equals) stands alone
    assert quiet.labels == ("anger",) and quiet.scores == pytest.approx((0.51, 0.49, 0.49, 0.49))
    priors = [p for p in backend.scored if p.startswith("Text: N/A")]
    assert len(priors) == len(EMOTIONS)  # each label's prior scored once, then kept
