"""Text -> unit vectors: the embedder protocol, sentence-transformers and hashing embedders,
and the content-keyed vector cache kept in the store.
"""

from agent.embed.embedders import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    embed_items,
    make_embedder,
)

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "embed_items",
    "make_embedder",
]
