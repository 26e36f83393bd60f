"""Text -> unit vectors: the embedder protocol, sentence-transformers and hashing embedders,
and the content-keyed vector cache kept in the store.
"""

from agent.embed.cache import embed_items
from agent.embed.factory import make_embedder
from agent.embed.hashing import HashingEmbedder
from agent.embed.protocol import Embedder, VectorCache
from agent.embed.transformer import SentenceTransformerEmbedder

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "VectorCache",
    "embed_items",
    "make_embedder",
]
