"""labelagent: label text corpora with an LLM, a small classifier and a human.

The public API for pipelines: build a session over a project folder or a list of texts,
ask it what is worth a look, give it answers, and run the batch job.
"""

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
from agent.job import JobLimits, JobReport, run_job
from agent.session import LabelingSession, Oracle
from agent.store import Store
from agent.types import Item, LabelDecision, LabelSet, Selection

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
