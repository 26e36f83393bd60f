"""Learning on arrays, no store: the classifier committee, the query strategies with their
registry, the few-shot example index and the k-means cells of the pool.
"""
