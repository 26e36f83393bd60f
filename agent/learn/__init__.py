"""Learning on arrays, no store: the classifier committee, the query strategies (their
contract, row scores and combinators, diversity strategies, registry), the few-shot example
index and the k-means cells of the pool.
"""
