"""One pydantic config model, loaded at the edge (CLI/TUI) and passed down; no globals."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Literal

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
    # Texts longer than this are cut for the prompt, with a visible marker (item_markup.cut_text).
    max_text_chars: int = Field(4000, ge=100)
    budget_calls: int | None = Field(None, ge=0)
    budget_usd: float | None = Field(None, ge=0)
    # How answers are constrained on an OpenAI-compatible endpoint; "auto" probes the endpoint
    # once per project and falls back json_schema -> json_object -> text on a refusal.
    structured_output: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    # Calls in a row that fail after their retries before the run stops (a dead endpoint, a
    # wrong key); fewer failures only fail their items, which the next run asks again.
    stop_after_failures: int = Field(5, ge=1, le=1000)
    # Whether answers carry a one-sentence rationale. "auto": not from an endpoint on this
    # machine (127.0.0.1, localhost), where every written token costs seconds of the
    # user's own CPU; always from a remote provider.
    rationale: Literal["auto", "always", "never"] = "auto"
    # "never": no token log-probabilities are asked for; confidence comes from `samples` answers
    # (or, with samples 1, the model's own word). For servers where they cost more than the
    # answer: llama-cpp-python's computes them over the whole vocabulary at every position.
    logprobs: Literal["auto", "never"] = "auto"


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
    # How the corpus accuracy is measured. "prediction-powered": audits drawn toward the least
    # sure labels, corrected by each label's predicted chance of being right (narrower);
    # "stratified-exact": uniform audits and an exact (Clopper-Pearson) interval, no model.
    estimator: Literal["prediction-powered", "stratified-exact"] = "prediction-powered"
    min_evidence: int = Field(30, ge=1)  # audited items needed before thresholds relax
    # Random audits of LLM labels that measure the LLM before its labels are trusted in training
    # and in the best guess; until then each round asks it about at most `llm_probe` items.
    trust_audits: int = Field(40, ge=1)
    llm_probe: int = Field(160, ge=1)
    llm_audit_rate: float = Field(0.005, ge=0.0, le=1.0)  # keeps measuring once trusted
    # Multi-label: each label's P(in the set) must lie this far from 0.5 (>= it or <= 1 - it)
    # for the LLM and the classifier alike before an agreed label counts as settled.
    label_confidence: float = Field(0.85, gt=0.5, lt=1.0)
    human_weight: float = Field(5.0, gt=0)  # a person's label against one certain LLM label
    # What one person's label costs in dollars. With it, `status` shows people's spend beside
    # the LLM's, and the LLM is asked only while an answer is expected to be worth its price
    # (its audited worth, in certain labels, times this); None: prices are not weighed.
    human_label_usd: float | None = Field(None, ge=0)
    crossfit_folds: int = Field(5, ge=2, le=20)


class ProjectConfig(BaseModel):
    """Everything a project can be tuned by; saved as labelagent.json in the project folder."""

    model_config = ConfigDict(extra="forbid")

    # single_label: one label per item; multi_label: a set of labels per item (README: Multi-label).
    task: Literal["single_label", "multi_label"] = "single_label"
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = Field(64, ge=1)
    committee_size: int = Field(5, ge=1, le=50)
    # Inverse regularisation of the classifier once it learns from the LLM's labels over the
    # pool (thousands of noisy rows; without them C=10 with balanced classes fits a few clean
    # human labels). On real GPT-4 labels (babe, 2 seeds) C=1 needed 525 human labels to
    # target 0.9 where C=10 needed 675; C=0.3 needed 450 there but lost 3 AULC points on trec.
    llm_taught_c: float = Field(1.0, gt=0)
    seed: int = 0
    batch_size: int = Field(50, ge=1)
    strategy: str = "hybrid"
    lease_seconds: int = Field(600, ge=5)
    retrain_every: int = Field(20, ge=1)
    train_on_auto: bool = True  # the classifier also learns from audited auto-accepts
    overlap_rate: float = Field(0.0, ge=0.0, le=1.0)
    # Where the pool-wide work (embedding what the cache lacks, scoring the pool) runs: "local"
    # (this process) or "ray" (Ray Data map_batches; needs `pip install 'labelagent[ray]'`) on
    # a Ray instance started for the run (ray_address None) or the cluster at ray_address
    # ("auto", "ray://host:port"). Same results either way (agent/batch/).
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    break_after_minutes: float = Field(50.0, gt=0)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)

    def save(self, folder: Path) -> None:
        """Write labelagent.json whole or not at all (a temporary file, then a rename); an
        OSError names labelagent.json."""
        path = folder / CONFIG_FILE
        tmp = path.with_name(path.name + ".partial")
        try:
            tmp.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
            tmp.replace(path)
        except BaseException as exc:
            with contextlib.suppress(OSError):  # never a folder or file that is not ours
                if tmp.is_file() or tmp.is_symlink():
                    tmp.unlink()
            if isinstance(exc, OSError):
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
            raise

    @classmethod
    def load(cls, folder: Path) -> ProjectConfig:
        """Read the project's config file; a missing file means defaults. Anything that is
        not a readable JSON object of known settings is a ConfigError naming file and field."""
        path = folder / CONFIG_FILE
        if not path.exists() and not path.is_symlink():
            return cls()
        data = _read_json(path)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(first["msg"], file=str(path), field=where or None) from None


def _read_json(path: Path) -> Any:
    """The parsed config file; ConfigError for what is not a regular file holding JSON."""
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file (or a broken link)"
        raise ConfigError(f"{what}; it must be a JSON file of settings", file=str(path))
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (byte {exc.start})", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc.msg})", file=str(path), row=exc.lineno) from None
    except RecursionError:
        raise ConfigError("not valid JSON (nested too deeply)", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object of settings", file=str(path))
    return data
