"""labelagent: label text corpora with an LLM, a small classifier and a human.

The public API for pipelines: build a session over a project folder or a list of texts,
ask it what is worth a look, give it answers, run the batch job (`run_job`, or `await
arun_job` from async code), read one answer per item (`session.results()`, with the
`COLUMNS` that `export` writes). Names load lazily, so `import agent` (and every CLI
command) stays fast until a name is used.
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
    "arun_job": "agent.loop.job",
    "run_job": "agent.loop.job",
    "COLUMNS": "agent.loop.results",
    "export": "agent.app.export",
    "LabelingSession": "agent.loop.session",
    "Oracle": "agent.loop.job",
    "Store": "agent.store.sqlite",
    "Item": "agent.types",
    "LabelDecision": "agent.types",
    "LabelSet": "agent.types",
    "Selection": "agent.types",
}

__all__ = [
    "COLUMNS",
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
    "arun_job",
    "export",
    "run_job",
]

if _typing.TYPE_CHECKING:
    from agent.app.export import export
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
    from agent.loop.job import JobLimits, JobReport, Oracle, arun_job, run_job
    from agent.loop.results import COLUMNS
    from agent.loop.session import LabelingSession
    from agent.store.sqlite import Store
    from agent.types import Item, LabelDecision, LabelSet, Selection


def __getattr__(name: str) -> _typing.Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(_import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
