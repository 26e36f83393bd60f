"""Configured model name -> Embedder: a small registry of name patterns, sentence-transformers last.

Each entry is (a full-match name pattern, a builder of the match and the device); the first
pattern that matches wins, and any other name is a sentence-transformers model name or folder.
Adding an embedder (ONNX int8, static) = one builder and one line in EMBEDDERS.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agent.config import DEFAULT_EMBEDDING_MODEL
from agent.embed.hashing import HASHING_NAME, HashingEmbedder
from agent.embed.protocol import Embedder
from agent.embed.transformer import SentenceTransformerEmbedder

Builder = Callable[[re.Match[str], str], Embedder]


def _hashing(match: re.Match[str], device: str) -> Embedder:
    """The default HashingEmbedder for "hashing"; for "hashing-<dim>-s<seed>", that one."""
    dim, seed = match.groups()
    return HashingEmbedder(int(dim), int(seed)) if dim else HashingEmbedder()


EMBEDDERS: tuple[tuple[re.Pattern[str], Builder], ...] = (
    (re.compile(rf"{HASHING_NAME}(?:-(\d+)-s(\d+))?"), _hashing),
)


def make_embedder(name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> Embedder:
    """The embedder a configured model name asks for; no model is loaded yet.

    "hashing" (or a HashingEmbedder's own name, "hashing-<dim>-s<seed>") picks the hashing
    embedder; any other name is a sentence-transformers model name or folder.
    """
    for pattern, build in EMBEDDERS:
        match = pattern.fullmatch(name)
        if match:
            return build(match, device)
    return SentenceTransformerEmbedder(name, device=device)
