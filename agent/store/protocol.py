"""`ProjectStore`: what every room may ask of a project's store, whatever holds the data.

`Store` (SQLite, one file or in memory) implements it today; a PostgreSQL store for teams on
several machines can follow. So nothing here names a database type: values in and out are
plain Python, the value types of `agent.types` and numpy arrays. Every write is one
transaction (all of it lands or none); reads never see half of a write. Opening a store
(create, open, memory, a server URL) is each implementation's own business; this is the
open store. Every implementation passes the contract suite in `tests/store_contract.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agent.types import (
    Annotation,
    CurrentLabel,
    ImportResult,
    Item,
    LabelSet,
    QueueEntry,
    QueueView,
)


@runtime_checkable
class ProjectStore(Protocol):
    """One labelling project's items, labels, annotations, review queue, caches and rounds."""

    # ---- opening and closing -------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The database file, or None where there is none (in memory, on a server)."""
        ...

    def close(self) -> None:
        """Release the connection; the store is unusable afterwards. Closing twice is fine."""
        ...

    def __enter__(self) -> ProjectStore:
        """`with store:` closes it on the way out."""
        ...

    def __exit__(self, *exc: object) -> None: ...

    # ---- label set and meta --------------------------------------------------------------
    @property
    def label_set(self) -> LabelSet:
        """The project's labels, fixed when it was created."""
        ...

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under `key` (estimates, settings), else `default`."""
        ...

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under `key`, replacing any earlier one."""
        ...

    # ---- items ---------------------------------------------------------------------------
    def add_items(
        self,
        rows: Iterable[tuple[str, str, str | None]],
        source_file: str = "",
        actor: str = "import",
    ) -> ImportResult:
        """Insert (ext_id, text, seed_label|None) rows in order, in one transaction. A known
        id with the same text is skipped; with another text, InputError and nothing lands.
        A seed label becomes a 'label' annotation of source 'import'."""
        ...

    def count_items(self) -> int: ...

    def last_item_key(self) -> int:
        """The newest item's key (0: none). Items are only ever added, with rising keys, so
        this changes exactly when the pool grows, and costs one index look-up, not a count."""
        ...

    def count_long_texts(self, chars: int) -> int:
        """Items whose text is longer than `chars` characters (cut for a prompt)."""
        ...

    def items(self, keys: Sequence[int] | None = None) -> list[Item]:
        """Every item in input order (keys ascending), or the given keys in the given order."""
        ...

    def iter_items(self, batch: int = 10_000) -> Iterator[list[Item]]:
        """Items in input order, `batch` at a time (bounded memory for big corpora)."""
        ...

    def existing_ids(self, ext_ids: Sequence[str]) -> set[str]:
        """Those of `ext_ids` already in the project."""
        ...

    def keys_for_ids(self, ext_ids: Sequence[str]) -> dict[str, int]:
        """Store keys by external id, for those of `ext_ids` that exist."""
        ...

    # ---- annotations (append-only; an undo appends a retraction) -------------------------
    def add_annotations(self, annotations: Sequence[Annotation]) -> list[int]:
        """Append annotations in one transaction; their ids (increasing) in order."""
        ...

    def retract(self, annotation_id: int, actor: str) -> None:
        """Hide annotation `annotation_id` from every read; StoreError if there is none."""
        ...

    def annotations(
        self, *, source: str | None = None, kind: str | None = None, item_key: int | None = None
    ) -> list[dict[str, Any]]:
        """Standing annotations as {column: value} rows (id, item_key, label, source, kind,
        actor, confidence, rationale, prompt_hash, round, duration_ms, target, meta (JSON
        text), created_at), oldest first, filtered by the given fields."""
        ...

    def count_annotations(self, *, source: str | None = None, kind: str | None = None) -> int:
        """How many standing annotations match, counted where the data lives."""
        ...

    def annotation_watermark(self) -> int:
        """The id of the newest annotation row of any kind (0 when there is none): it changes
        with every write to the log, retractions included, so readers can cache on it."""
        ...

    def label_annotations(self, sources: Iterable[str] | None = None) -> list[CurrentLabel]:
        """Every standing 'label' annotation (of `sources`, else all), oldest first; which of
        an item's labels wins is policy (`agent.routing.sources`), not the store's."""
        ...

    def latest_votes(
        self, source: str, item_keys: Sequence[int] | None = None
    ) -> dict[int, dict[str, Any]]:
        """Item key -> its newest standing 'vote' annotation from `source` (a row shaped as in
        `annotations()`), for every item or only `item_keys`; one consistent read."""
        ...

    # ---- human decisions (annotations and queue together) --------------------------------
    def record_human_labels(self, annotations: Sequence[Annotation], operator: str) -> list[int]:
        """Append human label annotations and, per annotation, do what `complete` does to its
        item's queue entry, in ONE transaction; the annotation ids in order. Nothing lands on
        a non-human or non-label annotation (ValueError) or an unknown item (StoreError)."""
        ...

    # ---- review queue with leases --------------------------------------------------------
    def enqueue(self, entries: Sequence[QueueEntry]) -> int:
        """Add entries or refresh pending ones (reason, priority, suggestion, round); entries
        already done stay done. Returns how many rows were added or refreshed."""
        ...

    def lease(self, operator: str, n: int = 1, lease_seconds: float = 600) -> list[QueueEntry]:
        """Claim up to n pending entries, highest priority first (then key), that nobody else
        holds (or whose lease ran out) and that `operator` has not labelled yet."""
        ...

    def renew(self, item_key: int, operator: str, lease_seconds: float = 600) -> None:
        """Extend `operator`'s lease on an item; nothing if someone else holds it now."""
        ...

    def complete(self, item_key: int, operator: str) -> None:
        """One review done and the lease freed; the entry is done at `reviews_needed`."""
        ...

    def release(self, item_key: int, operator: str, demote: bool = False) -> None:
        """Give `operator`'s lease back; `demote` puts the item behind every pending one."""
        ...

    def skip(self, item_key: int, operator: str) -> None:
        """Give `operator`'s lease back and put the item behind every item `operator` has not
        skipped, for that operator only, until they answer it (kept across sessions)."""
        ...

    def skipped(self, operator: str) -> list[int]:
        """Pending items `operator` skipped and has not answered, oldest skip first."""
        ...

    def reopen(
        self, item_key: int, operator: str | None = None, lease_seconds: float = 600
    ) -> None:
        """Undo of a review: pending again with one review fewer, leased to `operator`."""
        ...

    def release_operator(self, operator: str) -> int:
        """Give back every lease `operator` holds (their earlier session died); how many."""
        ...

    def queue_size(self) -> int:
        """How many entries are pending (leased ones included)."""
        ...

    def queue_counts(self) -> dict[str, int]:
        """Entries per state ('pending', 'done'); states without entries are left out."""
        ...

    def pending(self, limit: int | None = None) -> list[QueueEntry]:
        """Pending entries in lease order (priority descending, then key)."""
        ...

    def queued_keys(self) -> Iterable[int]:
        """Keys of every item ever queued (pending or done)."""
        ...

    def queue_views(self) -> dict[int, QueueView]:
        """Item key -> its queue row (reason, state, suggestion), for every item ever queued."""
        ...

    # ---- caches (derived data: recomputable, at a price) ---------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The LLM reply payload stored under `key`, else None."""
        ...

    def cache_put(
        self,
        key: str,
        model: str,
        payload: dict[str, Any],
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        """Record one paid LLM reply (replacing any under the same key)."""
        ...

    def cache_put_many(
        self, rows: Sequence[tuple[str, str, dict[str, Any], int, int, float]]
    ) -> None:
        """Record (key, model, payload, prompt tokens, completion tokens, cost) rows at once."""
        ...

    def cache_totals(self) -> dict[str, float]:
        """Cached replies: 'calls', 'prompt_tokens', 'completion_tokens', 'cost_usd'."""
        ...

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached float32 vectors (d,) of `model` by text hash; unknown hashes are absent."""
        ...

    def put_vectors(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors (n, d), row i under (model, hashes[i])."""
        ...

    def count_missing_vectors(self, model: str) -> int:
        """How many distinct item texts have no vector under `model` yet."""
        ...

    def missing_texts(self, model: str, after: str, limit: int) -> list[tuple[str, str]]:
        """A page of (text hash, text) of item texts with no vector under `model`: hashes
        above `after`, ascending, at most `limit`."""
        ...

    def vectors_by_key(
        self, model: str, after: int, upto: int, limit: int
    ) -> list[tuple[int, bytes | None]]:
        """A page of (item key, float32 vector bytes or None if uncached) for after < key <=
        upto, keys ascending, at most `limit`."""
        ...

    # ---- rounds --------------------------------------------------------------------------
    def start_round(self) -> int:
        """Open a round; its id (increasing)."""
        ...

    def finish_round(self, round_id: int, stats: dict[str, Any]) -> None:
        """Close a round with its JSON stats."""
        ...

    def rounds(self) -> list[dict[str, Any]]:
        """Every round, oldest first: {'id', 'started_at', 'finished_at' (None while open),
        'stats'}."""
        ...

    def close_interrupted_rounds(self, note: str) -> list[int]:
        """Close every open round (its run died) with 'interrupted' and `note` in its stats;
        the ids closed. Only a run that holds the run lock may call it."""
        ...

    # ---- one run at a time, claims per item ----------------------------------------------
    # A holder is (name, pid, host); pid and host default to the calling process's.
    def acquire_run_lock(
        self,
        holder: str,
        *,
        force: bool = False,
        stale_after_s: float = 300.0,
        pid: int | None = None,
        host: str | None = None,
    ) -> bool:
        """Take the project's run lock: True when taken now, False when this holder already
        held it (heartbeat refreshed). A StoreError naming the holder, pid, host and since
        when while another holder lives; a holder whose pid is gone on this host, or whose
        heartbeat is older than `stale_after_s`, is taken over; `force` takes over anyone."""
        ...

    def heartbeat_run_lock(
        self, holder: str, *, pid: int | None = None, host: str | None = None
    ) -> bool:
        """Refresh the holder's heartbeat; False when the lock is no longer theirs."""
        ...

    def release_run_lock(
        self, holder: str, *, pid: int | None = None, host: str | None = None
    ) -> None:
        """Give up the lock (a no-op unless the holder has it) and the holder's claims."""
        ...

    def run_lock(self) -> dict[str, Any] | None:
        """The lock: {'holder', 'pid', 'host', 'started_at', 'heartbeat'}, or None."""
        ...

    def claim_for_llm(
        self,
        keys: Sequence[int],
        holder: str,
        *,
        pid: int | None = None,
        host: str | None = None,
        ttl_s: float = 3600.0,
    ) -> list[int]:
        """Claim items for an LLM call in one transaction that checks them: the keys claimed,
        in the order given, leaving out items with a standing LLM vote and items that another
        live holder claimed (less than `ttl_s` ago); this holder's own claims count as free."""
        ...

    # ---- failed LLM calls ----------------------------------------------------------------
    def record_llm_failures(
        self, errors: Mapping[int, str], *, model: str = "", round_no: int = 0
    ) -> None:
        """Log item key -> one-line error for LLM calls that failed after their retries (the
        items get no vote; the next run asks them again), in one transaction."""
        ...

    def failed_llm_items(self, before: float | None = None) -> dict[int, str]:
        """Item key -> error of its latest failure, for items whose latest LLM attempt failed
        and that have no LLM vote since; with `before` (a time.time()), only failures written
        before then."""
        ...

    def count_failed_llm_items(self) -> int:
        """Items whose latest LLM attempt failed and that have no LLM vote since."""
        ...
