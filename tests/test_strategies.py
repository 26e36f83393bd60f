"""One contract suite over every registered strategy, then what each strategy is for."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError, PoolExhaustedError
from agent.learn import scoring
from agent.learn.strategies import STRATEGIES, get_strategy
from agent.types import Selection

NAMES = sorted(STRATEGIES)
Pool = tuple[np.ndarray, np.ndarray, dict[str, Any]]
DIM, N_CLASSES, N_MEMBERS = 8, 4, 3


def unit(a: np.ndarray) -> np.ndarray:
    """Rows of a scaled to unit length, float32."""
    out: np.ndarray = (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    return out


def pool(n_items: int, seed: int = 0, grid: bool = False) -> Pool:
    """Random pool arrays -> embeddings (N, DIM), probs (N, C) and a ctx that every strategy
    accepts. `grid` draws embeddings from a few points so that exact duplicates occur."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(-1, 2, (n_items, DIM)) if grid else rng.standard_normal((n_items, DIM))
    embeddings = unit(raw.astype(np.float32) + 1e-3 * (np.arange(DIM) == 0))
    probs = rng.dirichlet(np.ones(N_CLASSES), n_items).astype(np.float32)
    ctx = {
        "member_probs": rng.dirichlet(np.ones(N_CLASSES), (N_MEMBERS, n_items)).astype(np.float32),
        "labelled": np.arange(min(3, n_items)),
        "label_embeddings": unit(rng.standard_normal((N_CLASSES, DIM)).astype(np.float32)),
    }
    return embeddings, probs, ctx


def run(
    name: str, embeddings: Any, probs: Any, candidates: Any, n: int, seed: int, **ctx: Any
) -> Selection:
    return get_strategy(name)(probs, embeddings, candidates, n, np.random.default_rng(seed), **ctx)


@pytest.fixture(scope="module")
def medium() -> Pool:
    return pool(400)


# ---- the contract, for every strategy -------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_n_unique_indices_from_candidates(name: str, medium: Pool) -> None:
    embeddings, probs, ctx = medium
    candidates = np.arange(50, 400, 3)
    sel = run(name, embeddings, probs, candidates, 12, 0, **ctx)
    assert isinstance(sel, Selection) and len(sel) == 12 and sel.scores.shape == (12,)
    assert len(set(sel.indices.tolist())) == 12
    assert np.isin(sel.indices, candidates).all()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_selection(name: str, medium: Pool) -> None:
    embeddings, probs, ctx = medium
    a = run(name, embeddings, probs, np.arange(400), 10, 5, **ctx)
    b = run(name, embeddings, probs, np.arange(400), 10, 5, **ctx)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("name", NAMES)
def test_pool_exhausted_names_the_numbers(name: str, medium: Pool) -> None:
    embeddings, probs, ctx = medium
    with pytest.raises(PoolExhaustedError, match=r"asked for 8 .* only 7 candidates"):
        run(name, embeddings, probs, np.arange(7), 8, 0, **ctx)


@pytest.mark.parametrize("name", NAMES)
def test_zero_asked_gives_empty_selection(name: str, medium: Pool) -> None:
    embeddings, probs, ctx = medium
    sel = run(name, embeddings, probs, np.arange(0), 0, 0, **ctx)
    assert len(sel) == 0 and sel.indices.dtype == np.int64


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_candidates_count_once(name: str, medium: Pool) -> None:
    embeddings, probs, ctx = medium
    candidates = np.array([9, 3, 9, 3, 5, 5, 7])
    sel = run(name, embeddings, probs, candidates, 4, 0, **ctx)
    assert sorted(sel.indices.tolist()) == [3, 5, 7, 9]
    with pytest.raises(PoolExhaustedError):
        run(name, embeddings, probs, candidates, 5, 0, **ctx)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("candidates", [np.arange(0, 400, 2), np.array([5, 77, 130, 260, 399])])
def test_block_size_does_not_change_the_selection(
    name: str, candidates: np.ndarray, medium: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings, probs, ctx = medium
    whole = run(name, embeddings, probs, candidates, 5, 3, **ctx)
    monkeypatch.setattr(scoring, "_BATCH", 7)
    blocked = run(name, embeddings, probs, candidates, 5, 3, **ctx)
    np.testing.assert_array_equal(whole.indices, blocked.indices)
    np.testing.assert_allclose(whole.scores, blocked.scores, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_candidates_outside_the_pool_are_refused(name: str, medium: Pool) -> None:
    embeddings, probs, ctx = medium
    with pytest.raises(ValueError, match="candidates must lie"):
        run(name, embeddings, probs, np.array([1, 400]), 1, 0, **ctx)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_items=st.integers(1, 30),
    seed=st.integers(0, 2**16),
    grid=st.booleans(),
    data=st.data(),
)
def test_invariants_on_small_random_pools(
    name: str, n_items: int, seed: int, grid: bool, data: st.DataObject
) -> None:
    embeddings, probs, ctx = pool(n_items, seed, grid)
    candidates = np.asarray(
        data.draw(st.lists(st.integers(0, n_items - 1), min_size=1, max_size=n_items, unique=True))
    )
    n = data.draw(st.integers(0, candidates.size))
    sel = run(name, embeddings, probs, candidates, n, seed, **ctx)
    again = run(name, embeddings, probs, candidates, n, seed, **ctx)
    assert len(sel) == n and len(set(sel.indices.tolist())) == n
    assert np.isin(sel.indices, candidates).all()
    np.testing.assert_array_equal(sel.indices, again.indices)
    with pytest.raises(PoolExhaustedError):
        run(name, embeddings, probs, candidates, candidates.size + 1, seed, **ctx)


# ---- registry and inputs ---------------------------------------------------------------------


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'nope'.*margin"):
        get_strategy("nope")


@pytest.mark.parametrize(
    ("name", "missing"),
    [("margin", "probs"), ("hybrid", "probs"), ("vote_entropy", "member_probs"),
     ("kl_consensus", "member_probs"), ("zeroshot", "label_embeddings")],
)  # fmt: skip
def test_missing_inputs_name_what_is_needed(name: str, missing: str, medium: Pool) -> None:
    embeddings, probs, ctx = medium
    ctx = {k: v for k, v in ctx.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        run(name, embeddings, None if missing == "probs" else probs, np.arange(10), 2, 0, **ctx)


# ---- what each strategy is for ---------------------------------------------------------------


def test_uncertainty_strategies_pick_the_most_uncertain_candidate() -> None:
    embeddings, _, _ = pool(5)
    probs = np.array(
        [[0.9, 0.05, 0.05], [0.5, 0.45, 0.05], [0.4, 0.3, 0.3], [0.34, 0.33, 0.33], [1, 0, 0]],
        np.float32,
    )
    assert run("margin", embeddings, probs, np.arange(5), 1, 0).indices[0] == 3
    assert run("margin", embeddings, probs, np.array([0, 1, 2, 4]), 1, 0).indices[0] == 1
    assert run("entropy", embeddings, probs, np.arange(5), 1, 0).indices[0] == 3
    assert run("least_confidence", embeddings, probs, np.array([0, 1, 2]), 1, 0).indices[0] == 2
    order = run("margin", embeddings, probs, np.arange(5), 5, 0)
    assert order.indices.tolist() == [3, 1, 2, 0, 4]
    assert np.all(np.diff(order.scores) <= 0)


def test_ties_are_broken_by_the_rng() -> None:
    embeddings, _, _ = pool(200)
    flat = np.full((200, 3), 1 / 3, np.float32)
    picks = {tuple(run("margin", embeddings, flat, np.arange(200), 5, s).indices) for s in range(6)}
    assert len(picks) > 1


@pytest.mark.parametrize("name", ["vote_entropy", "kl_consensus"])
def test_committee_strategies_pick_where_members_disagree(name: str) -> None:
    embeddings, probs, _ = pool(300)
    members = np.tile(np.array([0.8, 0.1, 0.1], np.float32), (4, 300, 1))
    members[:, 17] = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]]
    members[:, 123] = [[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]]
    sel = run(name, embeddings, probs, np.arange(300), 2, 0, member_probs=members)
    assert set(sel.indices.tolist()) == {17, 123}
    assert sel.indices[0] == 17  # three-way split beats a two-way split


def blobs(n_blobs: int, per_blob: int, seed: int = 0, spread: float = 0.05) -> np.ndarray:
    """Tight blobs around n_blobs orthogonal directions -> (n_blobs * per_blob, DIM), blob-major."""
    rng = np.random.default_rng(seed)
    centres = np.repeat(np.eye(n_blobs, DIM, dtype=np.float32), per_blob, axis=0)
    return unit(centres + spread * rng.standard_normal(centres.shape).astype(np.float32))


def test_kmeans_takes_one_item_from_each_cluster() -> None:
    embeddings = blobs(4, 50)
    sel = run("kmeans", embeddings, None, np.arange(200), 4, 0)
    assert sorted((sel.indices // 50).tolist()) == [0, 1, 2, 3]


def test_coreset_picks_the_point_farthest_from_the_labelled_set() -> None:
    embeddings = blobs(3, 40)
    labelled = np.arange(0, 40)  # blob 0 is labelled
    candidates = np.arange(40, 120)
    first = run("coreset", embeddings, None, candidates, 1, 0, labelled=labelled)
    dists = np.linalg.norm(embeddings[candidates, None] - embeddings[None, labelled], axis=2)
    assert first.indices[0] == candidates[np.argmax(dists.min(axis=1))]
    two = run("coreset", embeddings, None, candidates, 2, 0, labelled=labelled)
    assert sorted((two.indices // 40).tolist()) == [1, 2]  # the second covers the other blob


def test_hybrid_spreads_uncertain_picks_over_clusters() -> None:
    embeddings = blobs(2, 50)
    probs = np.tile(np.array([0.9, 0.1], np.float32), (100, 1))
    probs[:50] = [0.52, 0.48]  # blob 0 is the most uncertain everywhere
    probs[50:] = [0.6, 0.4]
    sel = run("hybrid", embeddings, probs, np.arange(100), 2, 0, hybrid_factor=50)
    assert sorted((sel.indices // 50).tolist()) == [0, 1]
    assert run("margin", embeddings, probs, np.arange(100), 2, 0).indices.max() < 50


def test_zeroshot_covers_every_label_first() -> None:
    embeddings = blobs(4, 30)
    labels = np.eye(4, DIM, dtype=np.float32)
    sel = run("zeroshot", embeddings, None, np.arange(120), 8, 0, label_embeddings=labels)
    blob_of = (sel.indices // 30).tolist()
    assert sorted(blob_of[:4]) == [0, 1, 2, 3] and sorted(blob_of[4:]) == [0, 1, 2, 3]
    best = np.argmax(embeddings[:30] @ labels[0])
    assert best in sel.indices
