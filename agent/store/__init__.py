"""The project store: the only place that knows SQL.

A `ProjectStore` protocol (items, the label set, append-only annotations with provenance,
the review queue with leases, the LLM and embedding caches, rounds) and its SQLite
implementation with schema and migrations. A PostgreSQL store can follow behind the same
protocol and pass the same contract tests (`tests/store_contract.py`).
"""
