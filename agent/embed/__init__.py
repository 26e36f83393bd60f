"""Text -> unit vectors: the embedder protocol, sentence-transformers and hashing embedders,
the derived fast embedders (ONNX int8, static), and the content-keyed vector cache in the store.
"""

from agent.embed.cache import embed_items
from agent.embed.factory import make_embedder
from agent.embed.hashing import HashingEmbedder
from agent.embed.onnx_int8 import OnnxInt8Embedder
from agent.embed.protocol import Embedder, VectorCache
from agent.embed.static import StaticEmbedder
from agent.embed.transformer import SentenceTransformerEmbedder

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "OnnxInt8Embedder",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
    "VectorCache",
    "embed_items",
    "make_embedder",
]
