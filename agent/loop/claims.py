"""Items another worker is asking the LLM about right now: wait for its answers, never re-ask.

A round claims the items it sends to the LLM (`ProjectStore.claim_for_llm`); an item claimed
by another live worker (a second process, a library user) is not sent again. Its vote lands
when that worker's batch returns, so the round waits for it, a while, and takes it as a cached
answer; an item whose vote never comes counts as an abstention (nothing paid, nothing known).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.store.protocol import ProjectStore
from agent.types import LabelDecision, Source

WAIT_S = 120.0  # how long a round waits for another worker's answers
POLL_S = 0.25

ELSEWHERE = "asked by another worker whose answer did not arrive in time"


def answers_of_others(
    store: ProjectStore,
    keys: Sequence[int],
    as_decision: Callable[[dict[str, Any]], LabelDecision],
    wait_s: float = WAIT_S,
) -> dict[int, LabelDecision]:
    """Item key -> the LLM vote another worker stores for it within `wait_s` (as a cached
    decision), else an abstention that cost nothing."""
    found: dict[int, LabelDecision] = {}
    deadline = time.monotonic() + wait_s
    missing = list(keys)
    while missing:
        votes = store.latest_votes(Source.LLM.value, missing)
        found.update((k, as_decision(row)) for k, row in votes.items())
        missing = [k for k in missing if k not in found]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    for key in missing:
        found[key] = LabelDecision(None, 0.0, ELSEWHERE, cached=True)
    return found
