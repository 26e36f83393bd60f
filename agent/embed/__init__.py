"""Text -> unit vectors: the embedder protocol, sentence-transformers and hashing embedders,
and the content-keyed vector cache kept in the store.
"""
