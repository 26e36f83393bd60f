"""The store's SQL schema as an ordered list of migrations; the store applies the missing ones.

`PRAGMA user_version` counts the migrations applied; `PRAGMA application_id` marks the file as
labelagent's (databases made before it was set carry 0 and are recognised by their tables).
"""

from __future__ import annotations

import re

# "LbAg": written into every labelagent database's header, so no other SQLite file is taken
# for a project (and no other program's database gets our tables).
APPLICATION_ID = 0x4C624167

# Each entry moves the schema from version i to i+1. Never edit a released entry: append one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE labels (
        idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE items (
        key INTEGER PRIMARY KEY AUTOINCREMENT,
        ext_id TEXT NOT NULL UNIQUE,
        text TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        source_file TEXT NOT NULL DEFAULT '',
        source_row INTEGER
    );
    CREATE INDEX items_hash ON items(text_hash);
    CREATE TABLE annotations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_key INTEGER NOT NULL REFERENCES items(key),
        label TEXT,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL DEFAULT '',
        confidence REAL,
        rationale TEXT NOT NULL DEFAULT '',
        prompt_hash TEXT NOT NULL DEFAULT '',
        round INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER,
        target INTEGER REFERENCES annotations(id),
        meta TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE INDEX annotations_item ON annotations(item_key, kind);
    CREATE INDEX annotations_source ON annotations(source, kind);
    CREATE TABLE llm_cache (
        key TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        payload TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE embeddings (
        model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,
        PRIMARY KEY (model, text_hash)
    ) WITHOUT ROWID;
    CREATE TABLE queue (
        item_key INTEGER PRIMARY KEY REFERENCES items(key),
        reason TEXT NOT NULL,
        priority REAL NOT NULL DEFAULT 0,
        round INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending',
        reviews_needed INTEGER NOT NULL DEFAULT 1,
        reviews_done INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires REAL,
        suggestion TEXT NOT NULL DEFAULT '{}',
        enqueued_at REAL NOT NULL
    );
    CREATE INDEX queue_pending ON queue(state, priority DESC);
    CREATE TABLE rounds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at REAL NOT NULL,
        finished_at REAL,
        stats TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: one run at a time (a single-row lock with a heartbeat) and per-item LLM claims.
    """
    CREATE TABLE run_lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat REAL NOT NULL
    );
    CREATE TABLE llm_claims (
        item_key INTEGER PRIMARY KEY REFERENCES items(key),
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        claimed_at REAL NOT NULL
    );
    """,
    # 3: skips per operator, so a skipped item stays at the back of that operator's queue
    # across sessions and queue refreshes (which rewrite priorities).
    """
    CREATE TABLE queue_skips (
        item_key INTEGER NOT NULL REFERENCES items(key),
        operator TEXT NOT NULL,
        skipped_at REAL NOT NULL,
        PRIMARY KEY (item_key, operator)
    ) WITHOUT ROWID;
    """,
    # 4: LLM calls that failed after their retries, per item (an append-only log). An item
    # counts as failed while no LLM vote is newer than its latest failure (`watermark`: the
    # newest annotation id when the failure was written); the next run asks it again.
    """
    CREATE TABLE llm_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_key INTEGER NOT NULL REFERENCES items(key),
        model TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL,
        round INTEGER NOT NULL DEFAULT 0,
        watermark INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX llm_failures_item ON llm_failures(item_key, id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def tables_of(migrations: list[str]) -> set[str]:
    """Names of the tables that `migrations` create."""
    return {
        name.lower()
        for step in migrations
        for name in re.findall(r"CREATE TABLE (\w+)", step, flags=re.IGNORECASE)
    }
