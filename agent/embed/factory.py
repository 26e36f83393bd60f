"""Configured model name -> Embedder: a small registry of name patterns, sentence-transformers last.

Each entry is (a full-match name pattern, a builder of the match and the device); the first
pattern that matches wins, and any other name is a sentence-transformers model name or folder.
Adding an embedder = one builder and one line in EMBEDDERS.

Derived embedders are named "<variant>" (from the bundled all-MiniLM-L6-v2) or
"<model>:<variant>" (from a local model folder): "onnx-int8" (ONNX Runtime, int8 weights) and
"static" (a model2vec table distilled from the model). Any other "<model>:<lowercase word>" is
refused, so a typo cannot silently fall through to a sentence-transformers lookup.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agent.config import DEFAULT_EMBEDDING_MODEL
from agent.embed.hashing import HASHING_NAME, HashingEmbedder
from agent.embed.protocol import Embedder
from agent.embed.transformer import SentenceTransformerEmbedder
from agent.errors import ConfigError

Builder = Callable[[re.Match[str], str], Embedder]


def _hashing(match: re.Match[str], device: str) -> Embedder:
    """The default HashingEmbedder for "hashing"; for "hashing-<dim>-s<seed>", that one."""
    dim, seed = match.groups()
    return HashingEmbedder(int(dim), int(seed)) if dim else HashingEmbedder()


def _onnx_int8(match: re.Match[str], device: str) -> Embedder:
    from agent.embed.onnx_int8 import OnnxInt8Embedder  # onnxruntime loads only on first encode

    return OnnxInt8Embedder(match.group(1))


def _static(match: re.Match[str], device: str) -> Embedder:
    from agent.embed.static import StaticEmbedder

    return StaticEmbedder(match.group(1))


def _unknown_variant(match: re.Match[str], device: str) -> Embedder:
    raise ConfigError(
        f"unknown embedder variant '{match.group(2)}' in '{match.group(0)}'; known: "
        f"{', '.join(VARIANTS)} (as '<variant>' or '<model folder>:<variant>')"
    )


VARIANTS = ("onnx-int8", "static")
EMBEDDERS: tuple[tuple[re.Pattern[str], Builder], ...] = (
    (re.compile(rf"{HASHING_NAME}(?:-(\d+)-s(\d+))?"), _hashing),
    (re.compile(r"(?:(.+):)?onnx-int8"), _onnx_int8),
    (re.compile(r"(?:(.+):)?static"), _static),
    (re.compile(r"(.+):([a-z][a-z0-9-]*)"), _unknown_variant),
    (re.compile(r"()((?:onnx|static)[a-z0-9-]*)"), _unknown_variant),  # near misses: onnx-int4
)


def make_embedder(name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> Embedder:
    """The embedder a configured model name asks for; no model is loaded yet.

    "hashing" (or a HashingEmbedder's own name, "hashing-<dim>-s<seed>") picks the hashing
    embedder; "[<model>:]onnx-int8" and "[<model>:]static" the derived embedders; any other
    name is a sentence-transformers model name or folder.
    """
    for pattern, build in EMBEDDERS:
        match = pattern.fullmatch(name)
        if match:
            return build(match, device)
    return SentenceTransformerEmbedder(name, device=device)
