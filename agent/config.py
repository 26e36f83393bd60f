"""One pydantic config model, loaded at the edge (CLI/TUI) and passed down; no globals."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError

CONFIG_FILE = "labelagent.json"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class LLMConfig(BaseModel):
    """How to reach the LLM. Keys come only from the environment, never from here."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None  # e.g. "openai/gpt-4o-mini", "anthropic/claude-...", None = no LLM
    api_base: str | None = None
    adapter: str = "auto"  # auto | openai | litellm
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=16)
    timeout_s: float = Field(60.0, gt=0)
    concurrency: int = Field(16, ge=1, le=1024)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    max_retries: int = Field(5, ge=0, le=20)
    max_reasks: int = Field(2, ge=0, le=10)
    samples: int = Field(5, ge=1, le=20)  # self-consistency samples when no logprobs
    few_shot_k: int = Field(8, ge=0, le=64)
    items_per_call: int = Field(1, ge=1, le=50)
    budget_calls: int | None = Field(None, ge=0)
    budget_usd: float | None = Field(None, ge=0)


class RoutingConfig(BaseModel):
    """Who looks at which item."""

    model_config = ConfigDict(extra="forbid")

    target_precision: float = Field(0.95, gt=0.5, lt=1.0)
    audit_rate: float = Field(0.05, ge=0.0, le=1.0)
    # Audit rate until thresholds are certified: evidence comes faster, at more human labels.
    census_rate: float = Field(0.25, ge=0.0, le=1.0)
    # Audits per round at most: evidence enough for thresholds without starving reviews.
    max_audits_per_round: int | None = Field(10, ge=1)
    # Share of a human budget kept for the final random audit that measures the corpus.
    final_audit_share: float = Field(0.1, ge=0.0, le=0.5)
    confidence_level: float = Field(0.95, gt=0.5, lt=1.0)
    min_evidence: int = Field(30, ge=1)  # audited items needed before thresholds relax


class ProjectConfig(BaseModel):
    """Everything a project can be tuned by; saved as labelagent.json in the project folder."""

    model_config = ConfigDict(extra="forbid")

    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = Field(64, ge=1)
    committee_size: int = Field(5, ge=1, le=50)
    seed: int = 0
    batch_size: int = Field(50, ge=1)
    strategy: str = "hybrid"
    lease_seconds: int = Field(600, ge=5)
    retrain_every: int = Field(20, ge=1)
    train_on_auto: bool = True  # the classifier also learns from audited auto-accepts
    overlap_rate: float = Field(0.0, ge=0.0, le=1.0)
    break_after_minutes: float = Field(50.0, gt=0)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)

    def save(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> ProjectConfig:
        """Read the project's config file; a missing file means defaults."""
        path = folder / CONFIG_FILE
        if not path.exists():
            return cls()
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON ({exc.msg})", file=str(path), row=exc.lineno
            ) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(first["msg"], file=str(path), field=where) from None
