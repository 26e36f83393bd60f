"""The classifier committee on a synthetic Gaussian mixture of unit vectors (no real embedding)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone

from agent.learn.committee import Committee, zero_shot_proba

N_CLASSES, DIM = 6, 24


def mixture(
    n: int, seed: int = 0, spread: float = 0.9, n_classes: int = N_CLASSES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n unit vectors around n_classes random centres -> X (n, DIM) float32, y (n,), centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, n_classes, n)
    X = centres[y] + spread / np.sqrt(DIM) * rng.standard_normal((n, DIM)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y, centres


def first_per_class(y: np.ndarray, k: int, classes: range | list[int]) -> np.ndarray:
    """Row indices of the first k items of each class in `classes`."""
    return np.concatenate([np.flatnonzero(y == c)[:k] for c in classes])


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return mixture(3000)


def test_one_item_per_class_beats_chance(data: tuple[np.ndarray, ...]) -> None:
    X, y, _ = data
    rows = first_per_class(y, 1, range(N_CLASSES))
    model = Committee(random_state=0).fit(X[rows], y[rows], N_CLASSES)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (model.predict(X) == y).mean() > 3.0 / N_CLASSES


def test_accuracy_rises_well_above_chance_with_labels(data: tuple[np.ndarray, ...]) -> None:
    X, y, _ = data
    rows = first_per_class(y, 20, range(N_CLASSES))
    test = np.setdiff1d(np.arange(len(y)), rows)
    model = Committee(random_state=0).fit(X[rows], y[rows], N_CLASSES)
    assert (model.predict(X[test]) == y[test]).mean() > 0.85


def test_missing_classes_keep_small_mass_over_whole_label_set(
    data: tuple[np.ndarray, ...],
) -> None:
    X, y, _ = data
    rows = first_per_class(y, 5, [0, 2, 3])
    proba = Committee(random_state=0).fit(X[rows], y[rows], N_CLASSES).predict_proba(X)
    assert proba.shape == (len(X), N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    unseen = proba[:, [1, 4, 5]]
    assert np.all(unseen > 0) and unseen.max() < 0.05
    assert set(np.unique(proba.argmax(axis=1))) <= {0, 2, 3}


def test_single_labelled_class_gives_it_most_mass_and_no_crash(
    data: tuple[np.ndarray, ...],
) -> None:
    X, y, _ = data
    rows = np.flatnonzero(y == 4)[:3]
    model = Committee(random_state=0).fit(X[rows], y[rows], N_CLASSES)
    proba = model.predict_proba(X[:50])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(model.predict(X[:50]) == 4)
    assert np.all(proba > 0)
    assert model.member_proba(X[:50]).shape == (5, 50, N_CLASSES)


def test_no_labels_gives_uniform_or_prior(data: tuple[np.ndarray, ...]) -> None:
    X, y, centres = data
    empty = np.empty(0, np.int64)
    uniform = Committee().fit(X[:0], empty, N_CLASSES).predict_proba(X[:10])
    np.testing.assert_allclose(uniform, 1.0 / N_CLASSES, atol=1e-6)
    zero_shot = Committee().fit(X[:0], empty, prior_embeddings=centres)
    assert (zero_shot.predict(X) == y).mean() > 0.8


def test_prior_scores_unlabelled_class_by_similarity(data: tuple[np.ndarray, ...]) -> None:
    X, y, centres = data
    rows = first_per_class(y, 3, [0, 1, 2, 3, 4])
    plain = Committee(random_state=0).fit(X[rows], y[rows], N_CLASSES).predict_proba(X)
    prior = Committee(random_state=0).fit(X[rows], y[rows], prior_embeddings=centres)
    proba = prior.predict_proba(X)
    assert np.ptp(plain[:, 5]) < 1e-6  # without a prior an unseen class is a constant
    assert proba[y == 5, 5].mean() > 5 * proba[y != 5, 5].mean()


def test_prior_weight_fades_as_labels_arrive(data: tuple[np.ndarray, ...]) -> None:
    X, y, centres = data
    weights = [
        Committee().fit(X[:k], y[:k], prior_embeddings=centres).prior_weight_ for k in (0, 10, 500)
    ]
    assert weights[0] == 1.0 and weights[0] > weights[1] > weights[2]


def test_each_bootstrap_member_sees_every_labelled_class() -> None:
    X, y, _ = mixture(3000, seed=3, n_classes=25)
    rows = first_per_class(y, 1, range(25))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one label per class is a normal cold start, no warning
        members = Committee(n_members=8, random_state=0).fit(X[rows], y[rows], 25)
    votes = members.member_proba(X[rows]).argmax(axis=2)
    assert np.all(votes == y[rows][None, :])


def test_members_disagree_near_boundaries(data: tuple[np.ndarray, ...]) -> None:
    X, y, _ = mixture(3000, seed=1, spread=2.0)
    rows = first_per_class(y, 8, range(N_CLASSES))
    member = Committee(n_members=6, random_state=0).fit(X[rows], y[rows], N_CLASSES)
    votes = member.member_proba(X).argmax(axis=2)
    assert np.mean(votes.min(axis=0) != votes.max(axis=0)) > 0.05


def test_same_random_state_same_members_other_state_differs(data: tuple[np.ndarray, ...]) -> None:
    X, y, _ = data
    rows = first_per_class(y, 10, range(N_CLASSES))
    a = Committee(random_state=7).fit(X[rows], y[rows], N_CLASSES).member_proba(X[:200])
    b = Committee(random_state=7).fit(X[rows], y[rows], N_CLASSES).member_proba(X[:200])
    c = Committee(random_state=8).fit(X[rows], y[rows], N_CLASSES).member_proba(X[:200])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_two_classes_and_float64_input() -> None:
    X, y, _ = mixture(600, seed=2, n_classes=2)
    model = Committee(random_state=0).fit(X[:40].astype(np.float64), y[:40], 2)
    assert model.coef_.shape == (2, DIM)
    assert (model.predict(X[40:].astype(np.float64)) == y[40:]).mean() > 0.9


def test_batched_scoring_matches_one_batch(data: tuple[np.ndarray, ...]) -> None:
    X, y, centres = data
    rows = first_per_class(y, 4, range(N_CLASSES))
    big = Committee(random_state=0).fit(X[rows], y[rows], prior_embeddings=centres)
    small = clone(big).set_params(batch_size=7).fit(X[rows], y[rows], prior_embeddings=centres)
    np.testing.assert_allclose(big.predict_proba(X), small.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(big.member_proba(X), small.member_proba(X), atol=1e-6)


def test_sklearn_conventions(data: tuple[np.ndarray, ...]) -> None:
    X, y, _ = data
    model = Committee(n_members=3, C=2.0)
    assert model.get_params()["n_members"] == 3 and not hasattr(model, "coef_")
    assert model.fit(X[:30], y[:30], N_CLASSES) is model
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(ValueError, match="not fitted"):
        Committee().predict_proba(X)


@pytest.mark.parametrize(
    ("labels", "n_classes", "match"),
    [([0, 7], 6, "labels must lie"), ([0, 1, 2], None, r"n == len\(y\)"), ([], None, "n_classes")],
)
def test_bad_input_is_refused(labels: list[int], n_classes: int | None, match: str) -> None:
    X = np.zeros((2, DIM), np.float32)
    with pytest.raises(ValueError, match=match):
        Committee().fit(X[: min(2, len(labels))], np.asarray(labels), n_classes)


def test_zero_shot_proba_follows_cosine_and_temperature() -> None:
    labels = np.eye(3, DIM, dtype=np.float32)
    X = np.eye(3, DIM, dtype=np.float32)[[2, 0, 1]] * 5.0 + 0.1  # unnormalised on purpose
    sharp = zero_shot_proba(X, labels, temperature=0.05)
    soft = zero_shot_proba(X, labels, temperature=1.0)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0, atol=1e-6)
    assert list(sharp.argmax(axis=1)) == [2, 0, 1]
    assert np.all(sharp.max(axis=1) > soft.max(axis=1))
    with pytest.raises(ValueError, match="temperature"):
        zero_shot_proba(X, labels, temperature=0.0)
