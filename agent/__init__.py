"""labelagent: label text corpora with an LLM, a small classifier and a human.

The public API for pipelines: build a session over a project folder or a list of texts,
ask it what is worth a look, give it answers, and run the batch job. Names load lazily, so
`import agent` (and every CLI command) stays fast until a name is used.
"""

from __future__ import annotations

import typing as _typing
from importlib import import_module as _import_module

_HOMES = {
    "LLMConfig": "agent.config",
    "ProjectConfig": "agent.config",
    "RoutingConfig": "agent.config",
    "BudgetExceededError": "agent.errors",
    "ConfigError": "agent.errors",
    "EmbeddingError": "agent.errors",
    "InputError": "agent.errors",
    "LabelAgentError": "agent.errors",
    "LLMError": "agent.errors",
    "PoolExhaustedError": "agent.errors",
    "StoreError": "agent.errors",
    "JobLimits": "agent.loop.job",
    "JobReport": "agent.loop.job",
    "run_job": "agent.loop.job",
    "LabelingSession": "agent.loop.session",
    "Oracle": "agent.loop.job",
    "Store": "agent.store.sqlite",
    "Item": "agent.types",
    "LabelDecision": "agent.types",
    "LabelSet": "agent.types",
    "Selection": "agent.types",
}

__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "EmbeddingError",
    "InputError",
    "Item",
    "JobLimits",
    "JobReport",
    "LLMConfig",
    "LLMError",
    "LabelAgentError",
    "LabelDecision",
    "LabelSet",
    "LabelingSession",
    "Oracle",
    "PoolExhaustedError",
    "ProjectConfig",
    "RoutingConfig",
    "Selection",
    "Store",
    "StoreError",
    "run_job",
]

if _typing.TYPE_CHECKING:
    from agent.config import LLMConfig, ProjectConfig, RoutingConfig
    from agent.errors import (
        BudgetExceededError,
        ConfigError,
        EmbeddingError,
        InputError,
        LabelAgentError,
        LLMError,
        PoolExhaustedError,
        StoreError,
    )
    from agent.loop.job import JobLimits, JobReport, Oracle, run_job
    from agent.loop.session import LabelingSession
    from agent.store.sqlite import Store
    from agent.types import Item, LabelDecision, LabelSet, Selection


def __getattr__(name: str) -> _typing.Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(_import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
