"""One writer per run, claims per item: the run lock and the LLM claims.

A run holds the project's single-row lock (holder, pid, host, started, heartbeat) for its
whole length and beats it while it works; another run is refused, unless the holder is gone
(its pid no longer lives on this host, or its heartbeat is stale) or it forces its way in.
Items bound for the LLM are claimed in the transaction that checks them, so two processes
that both hold work never pay for one item twice. Mixed into each store (over `SQLOps`).
A holder is (name, pid, host): by default the calling process's pid and host.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from agent.errors import StoreError
from agent.store.sql import Connection, SQLOps, chunks, upsert

STALE_AFTER_S = 300.0  # a lock whose heartbeat is older than this is taken over
CLAIM_TTL_S = 3600.0  # a claim older than this counts as abandoned, whoever made it
_CHUNK = 900
_TAKE_LOCK = upsert(
    "run_lock", ("id", "holder", "pid", "host", "started_at", "heartbeat"), ("id",)
)
_CLAIM = upsert("llm_claims", ("item_key", "holder", "pid", "host", "claimed_at"), ("item_key",))


class LockOps(SQLOps):
    """Run lock and LLM claims operations."""

    # ---- the run lock ----------------------------------------------------------------------
    def acquire_run_lock(
        self,
        holder: str,
        *,
        force: bool = False,
        stale_after_s: float = STALE_AFTER_S,
        pid: int | None = None,
        host: str | None = None,
    ) -> bool:
        """Take the project's run lock for `holder`; True when taken now, False when this
        holder already held it (its heartbeat refreshed). A live holder's lock is refused
        with a StoreError naming it, unless `force`."""
        me = _who(holder, pid, host)
        now = time.time()
        with self._tx() as conn:
            self._dialect.serialize(conn, "run_lock")  # one taker at a time, even of no row
            row = conn.execute(
                "SELECT holder, pid, host, started_at, heartbeat FROM run_lock"
            ).fetchone()
            if row is not None and tuple(row[:3]) == me:
                conn.execute("UPDATE run_lock SET heartbeat = ?", (now,))
                return False
            if row is not None and not force and _alive(row, now, stale_after_s):
                raise StoreError(f"{self._where()}: {describe_lock(row, now)}")
            conn.execute(_TAKE_LOCK, (1, *me, now, now))
        return True

    def heartbeat_run_lock(
        self, holder: str, *, pid: int | None = None, host: str | None = None
    ) -> bool:
        """Refresh the holder's heartbeat; False when the lock is no longer theirs."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE run_lock SET heartbeat = ? WHERE holder = ? AND pid = ? AND host = ?",
                (time.time(), *_who(holder, pid, host)),
            )
            return cur.rowcount > 0

    def release_run_lock(
        self, holder: str, *, pid: int | None = None, host: str | None = None
    ) -> None:
        """Give the lock up (nothing happens when someone else holds it now) and drop the
        holder's claims on items the LLM never answered."""
        me = _who(holder, pid, host)
        with self._tx() as conn:
            conn.execute("DELETE FROM run_lock WHERE holder = ? AND pid = ? AND host = ?", me)
            conn.execute("DELETE FROM llm_claims WHERE holder = ? AND pid = ? AND host = ?", me)

    def run_lock(self) -> dict[str, Any] | None:
        """The lock as {'holder', 'pid', 'host', 'started_at', 'heartbeat'}, else None."""
        rows = self._read("SELECT holder, pid, host, started_at, heartbeat FROM run_lock")
        if not rows:
            return None
        return dict(zip(("holder", "pid", "host", "started_at", "heartbeat"), rows[0]))

    # ---- claims per item -------------------------------------------------------------------
    def claim_for_llm(
        self,
        keys: Sequence[int],
        holder: str,
        *,
        pid: int | None = None,
        host: str | None = None,
        ttl_s: float = CLAIM_TTL_S,
    ) -> list[int]:
        """Claim `keys` for an LLM call, in one transaction; the keys claimed (in the order
        given): not those already carrying an LLM vote, nor those a live other holder claimed.
        Claims this holder made before are claimed again."""
        me, now = _who(holder, pid, host), time.time()
        wanted = list(dict.fromkeys(keys))
        with self._tx() as conn:
            self._dialect.serialize(conn, "llm_claims")  # two claimers never see the same gap
            taken = _voted(conn, wanted) | _claimed_by_others(conn, wanted, me, now, ttl_s)
            mine = [k for k in wanted if k not in taken]
            conn.executemany(_CLAIM, [(k, *me, now) for k in mine])
        return mine


def _who(holder: str, pid: int | None, host: str | None) -> tuple[str, int, str]:
    return holder, os.getpid() if pid is None else pid, host or socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (signal 0 probes, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def _alive(row: Sequence[Any], now: float, stale_after_s: float) -> bool:
    """A lock row (holder, pid, host, started, heartbeat) whose holder still runs: beating
    recently and, on this host, its pid alive."""
    if now - float(row[4]) > stale_after_s:
        return False
    return row[2] != socket.gethostname() or pid_alive(int(row[1]))


def describe_lock(row: Sequence[Any], now: float) -> str:
    """One line naming who holds the lock and since when."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(row[3])))
    return (
        f"another run holds the project: '{row[0]}' (pid {row[1]} on {row[2]}) since {since}, "
        f"last heartbeat {max(0, round(now - float(row[4])))} s ago; wait for it to end, "
        "or take it over with --force if it is gone"
    )


def _voted(conn: Connection, keys: list[int]) -> set[int]:
    """Those of `keys` with a standing LLM vote."""
    found: set[int] = set()
    for chunk in chunks(keys, _CHUNK):
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT a.item_key FROM annotations a INDEXED BY annotations_item"
                f" WHERE a.item_key IN ({marks}) AND a.kind = 'vote' AND a.source = 'llm'"
                " AND NOT EXISTS (SELECT 1 FROM annotations r WHERE r.item_key = a.item_key"
                " AND r.kind = 'retract' AND r.target = a.id)",
                chunk,
            )
        )
    return found


def _claimed_by_others(
    conn: Connection, keys: list[int], me: tuple[str, int, str], now: float, ttl: float
) -> set[int]:
    """Those of `keys` claimed by another holder that still lives (pid alive on this host,
    or recent on another) within the claim's time to live."""
    here = socket.gethostname()
    alive: dict[int, bool] = {}
    found: set[int] = set()
    for chunk in chunks(keys, _CHUNK):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT item_key, holder, pid, host, claimed_at FROM llm_claims"
            f" WHERE item_key IN ({marks})",
            chunk,
        ).fetchall()
        for key, holder, pid, host, claimed_at in rows:
            if (holder, pid, host) == me or now - claimed_at > ttl:
                continue
            if host == here and not alive.setdefault(pid, pid_alive(pid)):
                continue
            found.add(key)
    return found
