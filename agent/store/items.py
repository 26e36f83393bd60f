"""Items, the label set, meta and human decisions: what a project holds, in shared SQL.

Mixed into each store (over `SQLOps`). Items are only ever added, with rising keys; a seed
label lands as an 'import' annotation in the same transaction as its item.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from agent.errors import InputError, StoreError
from agent.store.annotations import IN_CHUNK, insert_annotations
from agent.store.queue import complete_review
from agent.store.sql import Connection, SQLOps, chunks, upsert
from agent.types import Annotation, ImportResult, Item, Kind, LabelSet, Source, text_hash

_SET_META = upsert("meta", ("key", "value"), ("key",))


class ItemOps(SQLOps):
    """The label set, meta, items and human decisions."""

    _label_set: LabelSet | None = None

    def _after_import(self) -> None:
        """After a write of many items: refresh the planner's statistics (where it helps)."""

    # ---- label set and meta --------------------------------------------------------------
    @property
    def label_set(self) -> LabelSet:
        if self._label_set is None:
            rows = self._read("SELECT name, description FROM labels ORDER BY idx")
            self._label_set = LabelSet(tuple(r[0] for r in rows), tuple(r[1] for r in rows))
        return self._label_set

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as conn:
            conn.execute(_SET_META, (key, json.dumps(value)))

    # ---- items ---------------------------------------------------------------------------
    def add_items(
        self,
        rows: Iterable[tuple[str, str, str | None]],
        source_file: str = "",
        actor: str = "import",
    ) -> ImportResult:
        """Insert (ext_id, text, seed_label|None) rows in order, in ONE transaction.

        A row whose id is already present is skipped, so importing a file twice adds nothing.
        """
        added = skipped = seeds = 0
        now = time.time()
        with self._tx() as conn:
            for row_no, (ext_id, text, label) in enumerate(rows, start=1):
                new = conn.execute(
                    "INSERT INTO items(ext_id, text, text_hash, source_file, source_row)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(ext_id) DO NOTHING RETURNING key",
                    (ext_id, text, text_hash(text), source_file, row_no),
                ).fetchone()
                if new is None:
                    _check_same_text(conn, ext_id, text, source_file, row_no)
                    skipped += 1
                    continue
                added += 1
                if label is not None:
                    seeds += 1
                    conn.execute(
                        "INSERT INTO annotations(item_key, label, source, kind, actor, confidence,"
                        " created_at) VALUES (?, ?, 'import', 'label', ?, 1.0, ?)",
                        (new[0], label, actor, now),
                    )
        self._after_import()
        return ImportResult(added, skipped, seeds)

    def count_items(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM items")[0][0])

    def last_item_key(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(key), 0) FROM items")[0][0])

    def count_long_texts(self, chars: int) -> int:
        return int(self._read("SELECT COUNT(*) FROM items WHERE length(text) > ?", (chars,))[0][0])

    def items(self, keys: Sequence[int] | None = None) -> list[Item]:
        """Items in input order, or the given keys in the given order."""
        if keys is None:
            rows = self._read("SELECT key, ext_id, text, text_hash FROM items ORDER BY key")
            return [Item(*r) for r in rows]
        found: dict[int, Item] = {}
        for chunk in chunks(list(keys), 900):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, ext_id, text, text_hash FROM items WHERE key IN ({marks})"
            found.update({r[0]: Item(*r) for r in self._read(sql, chunk)})
        return [found[k] for k in keys]

    def iter_items(self, batch: int = 10_000) -> Iterator[list[Item]]:
        """Items in input order, a batch at a time (bounded memory for big corpora)."""
        last = 0
        while True:
            rows = self._read(
                "SELECT key, ext_id, text, text_hash FROM items WHERE key > ? ORDER BY key LIMIT ?",
                (last, batch),
            )
            if not rows:
                return
            last = rows[-1][0]
            yield [Item(*r) for r in rows]

    def keys_for_ids(self, ext_ids: Sequence[str]) -> dict[str, int]:
        """Store keys by external id, for the ids that exist."""
        found: dict[str, int] = {}
        for chunk in chunks(list(dict.fromkeys(ext_ids)), 900):
            marks = ",".join("?" * len(chunk))
            rows = self._read(f"SELECT ext_id, key FROM items WHERE ext_id IN ({marks})", chunk)
            found.update((str(i), int(k)) for i, k in rows)
        return found

    def existing_ids(self, ext_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(ext_ids), 900):
            marks = ",".join("?" * len(chunk))
            rows = self._read(f"SELECT ext_id FROM items WHERE ext_id IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    # ---- human decisions -----------------------------------------------------------------
    def record_human_labels(self, annotations: Sequence[Annotation], operator: str) -> list[int]:
        """Append human label annotations and count each one as a review done in the queue
        (what `complete` does), all in ONE transaction; returns the annotation ids in order.

        Refused before anything is written: an annotation that is not a human label
        (ValueError), names an item not in the project (StoreError) or an item another
        operator holds a running lease on (LeaseError).
        """
        for a in annotations:
            source, kind = Source(a.source), Kind(a.kind)
            if source is not Source.HUMAN or kind is not Kind.LABEL:
                raise ValueError(f"not a human label: {source.value} {kind.value} on {a.item_key}")
        now = time.time()
        with self._tx() as conn:
            missing = _missing_items(conn, [a.item_key for a in annotations])
            if missing:
                raise StoreError(f"no item {missing[0]} in the project ({len(missing)} unknown)")
            ids = insert_annotations(conn, annotations, now)
            for a in annotations:
                complete_review(conn, a.item_key, operator)
        return ids


def write_labels(conn: Connection, label_set: LabelSet) -> None:
    """Inside a write transaction: the label set and the creation time."""
    conn.executemany(
        "INSERT INTO labels(idx, name, description) VALUES (?, ?, ?)",
        [(i, n, d) for i, (n, d) in enumerate(zip(label_set.names, label_set.descriptions))],
    )
    conn.execute(_SET_META, ("created_at", json.dumps(time.time())))


def _check_same_text(
    conn: Connection, ext_id: str, text: str, source_file: str, row: int
) -> None:
    """A re-imported id must carry the same text; anything else is a conflict, not a skip."""
    stored = conn.execute("SELECT text_hash FROM items WHERE ext_id = ?", (ext_id,)).fetchone()
    if stored and stored[0] != text_hash(text):
        raise InputError(
            f"id '{ext_id}' is already in the project with a different text",
            file=source_file,
            row=row,
            field="id",
        )


def _missing_items(conn: Connection, keys: Sequence[int]) -> list[int]:
    """The keys (sorted, unique) that name no item."""
    wanted = set(keys)
    found: set[int] = set()
    for chunk in chunks(sorted(wanted), IN_CHUNK):
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0] for r in conn.execute(f"SELECT key FROM items WHERE key IN ({marks})", chunk)
        )
    return sorted(wanted - found)
