"""The project store: the only place that knows SQL.

A `ProjectStore` protocol (items, the label set, append-only annotations with provenance,
the review queue with leases, the LLM and embedding caches, rounds) and its SQLite
implementation `Store` with schema and migrations. A PostgreSQL store can follow behind the
same protocol and pass the same contract tests (`tests/store_contract.py`, the `StoreContract`
suite that `tests/test_store.py` runs on the SQLite file and in-memory stores).
"""

from agent.store.protocol import ProjectStore
from agent.store.sqlite import Store

__all__ = ["ProjectStore", "Store"]
