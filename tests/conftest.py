"""Shared test setup: offline environment, the LLM test-server fixtures, dataset paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytest_plugins = ("llm_fixtures", "postgres_server")

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
EXAMPLES = REPO / "examples" / "support"


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One small local Ray instance for the whole session (its start-up costs seconds); the
    Ray engine finds it running and leaves it up. Skipped without the `ray` extra."""
    pytest.importorskip("ray.data", reason="the ray extra is not installed")
    import ray

    from agent.batch.raydata import start_ray

    started = start_ray(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()
