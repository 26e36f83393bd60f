"""The local sentence-transformers model a derived embedder (ONNX int8, static) is built from.

Only a model on this disk will do: the bundled MiniLM by its name, or a model folder. A derived
embedder reproduces the model's own pipeline (tokenizer, mean pooling, L2 normalisation), so the
folder must say that it mean-pools; anything else is refused with one ConfigError line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.config import DEFAULT_EMBEDDING_MODEL
from agent.embed.transformer import resolve_model_path
from agent.errors import ConfigError


@dataclass(frozen=True)
class SourceModel:
    """A local mean-pooled sentence-transformers model: its configured name and folder."""

    name: str
    path: Path
    max_seq_length: int
    hidden_size: int


def source_model(name: str | None, variant: str) -> SourceModel:
    """The model behind "<name>:<variant>" (no name: the bundled MiniLM), checked but not loaded."""
    name = name or DEFAULT_EMBEDDING_MODEL
    path = Path(resolve_model_path(name))
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"embedding model '{name}:{variant}': '{name}' is not a local sentence-transformers "
            f"model folder; use '{variant}' for the bundled {DEFAULT_EMBEDDING_MODEL} or "
            f"'<model folder>:{variant}'"
        )
    if not _mean_pooled(path):
        raise ConfigError(
            f"embedding model '{name}:{variant}': only mean-pooled models are supported "
            f"(see {path / '1_Pooling' / 'config.json'})"
        )
    return SourceModel(name, path, _max_seq_length(path), _hidden_size(path))


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _mean_pooled(path: Path) -> bool:
    pooling = _read_json(path / "1_Pooling" / "config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True}
    return modes == {"pooling_mode_mean_tokens"}


def _max_seq_length(path: Path) -> int:
    value = _read_json(path / "sentence_bert_config.json").get("max_seq_length", 512)
    return int(value) if isinstance(value, int) else 512


def _hidden_size(path: Path) -> int:
    value = _read_json(path / "config.json").get("hidden_size")
    if not isinstance(value, int):
        raise ConfigError(f"{path / 'config.json'}: no integer 'hidden_size'")
    return value
