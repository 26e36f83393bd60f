"""The content-aware simulated LLM, measured on a shared dataset: its accuracy, how well its
confidence ranks right over wrong, and that its errors gather on the hard items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from agent.errors import ConfigError
from evals.content_llm import ABSTAIN, ContentSpec, content_backend, gold_oof_proba, simulate
from evals.data import load_dataset
from evals.llm_systems import llm_view
from evals.sim import SimConfig, SimContext
from evals.systems import resolve_llm_spec

TREC = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "trec"


@pytest.fixture(scope="module")
def trec(tmp_path_factory: pytest.TempPathFactory) -> SimContext:
    if not TREC.is_dir():
        pytest.skip(f"shared dataset missing: {TREC}")
    cache = tmp_path_factory.mktemp("cache")
    data = load_dataset(TREC, pool_size=2000, test_size=100, embedder="hashing", cache_dir=cache)
    return SimContext(data, SimConfig(llm="content:acc=0.8"))


def test_errors_follow_the_content_and_confidence_ranks_them(trec: SimContext) -> None:
    labels, confidence = simulate(trec, ContentSpec.parse("content:acc=0.8,abstain=0.03"))
    gold = trec.data.pool.y
    right = labels == gold
    assert right.mean() == pytest.approx(0.8, abs=0.03)
    assert np.mean(labels == ABSTAIN) == pytest.approx(0.03, abs=0.005)
    assert roc_auc_score(right, confidence) == pytest.approx(0.75, abs=0.05)
    ease = gold_oof_proba(trec)[np.arange(gold.size), gold]
    order, tenth = np.argsort(ease), gold.size // 10
    hardest, easiest = 1 - right[order[:tenth]].mean(), 1 - right[order[-tenth:]].mean()
    assert hardest >= 3 * easiest, (hardest, easiest)
    abstained_ease = ease[labels == ABSTAIN].mean()
    assert abstained_ease < ease.mean()  # abstains fall on the hard items


def test_a_weak_biased_llm_favours_a_label_and_never_says_others(trec: SimContext) -> None:
    labels, _ = simulate(trec, ContentSpec.parse("content:acc=0.35,bias=0.7,never=2"))
    gold = trec.data.pool.y
    assert np.mean(labels == gold) == pytest.approx(0.35, abs=0.03)
    shares = np.bincount(labels, minlength=trec.n_classes) / labels.size
    assert shares[0] > 0.4 and shares[-1] == shares[-2] == 0.0


def test_the_backend_answers_through_the_product_labeller(trec: SimContext) -> None:
    backend = content_backend(trec, "content:acc=0.8,seed=3")
    assert backend.model.startswith("replay:")
    view = llm_view(trec, 0)  # seeded spec: content:acc=0.8,seed=0
    expected, _ = simulate(trec, ContentSpec.parse("content:acc=0.8,seed=0"))
    texts = trec.data.pool.texts
    first = np.array([texts.index(t) == i for i, t in enumerate(texts)])  # a repeated text
    assert np.array_equal(view.labels[first], expected[first])  # hears its first answer


def test_bare_simulated_is_the_content_model_and_flat_stays_an_option() -> None:
    assert resolve_llm_spec("simulated", "trec") == "content:acc=0.8"
    assert resolve_llm_spec("simulated-flat", "trec") == "simulated:acc=0.8"


@pytest.mark.parametrize(
    "spec", ["content:auroc=0.7", "content:acc=1.2", "content:acc=0.8,colour=2", "content:acc=x"]
)
def test_bad_specs_are_one_clear_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        ContentSpec.parse(spec)
