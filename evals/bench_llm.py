"""Throughput of the LLM path against the local test server (fixed latency, fixed concurrency).

The ideal is concurrency / latency items per second (32 / 0.2 s = 160/s); efficiency is the
achieved rate over that ideal, so it measures client-side overhead (CPU per call, queuing).

    .venv/bin/python -m evals.bench_llm [--requests 640] [--concurrency 32] [--latency 0.2]

Prints a table, then on the LAST line `llm_efficiency=<value>` for the first row (openai SDK).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from agent.llm.litellm_backend import LiteLLMBackend
from agent.llm.openai_backend import OpenAIBackend
from agent.llm.protocol import ChatBackend, ChatRequest
from agent.llm.resilience import RetryPolicy

MODEL = "openai/test-model"
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number"},
        "rationale": {"type": "string"},
    },
    "required": ["label", "confidence", "rationale"],
    "additionalProperties": False,
}


@dataclass
class Row:
    """One benchmark line: what ran and how fast."""

    name: str
    requests: int
    seconds: float
    latencies: list[float]
    cpu_s: float  # client process CPU time over the timed section
    max_in_flight: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def efficiency(self, ideal: float) -> float:
        return self.rate / ideal


def _request(index: int) -> ChatRequest:
    text = f"Item {index}: the delivery was late but the support team was helpful."
    messages = [
        {"role": "system", "content": "Label the sentiment of the item. Answer in JSON."},
        {"role": "user", "content": f"<item>{text}</item>"},
    ]
    return ChatRequest(messages=messages, response_schema=SCHEMA, logprobs=True, top_logprobs=3)


async def _drive(
    backend: ChatBackend, requests: int, workers: int
) -> tuple[float, float, list[float]]:
    """`workers` callers share a queue of `requests` items after an untimed warm-up round.

    Returns wall time, client CPU time and each call's latency, in seconds (shape: requests).
    """
    latencies: list[float] = []
    todo = iter(range(requests))

    async def worker() -> None:
        for index in todo:
            start = time.perf_counter()
            await backend.complete(_request(index))
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(backend.complete(_request(-i)) for i in range(workers)))
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await backend.aclose()
    return elapsed, cpu, latencies


def _backends(base_url: str, concurrency: int) -> dict[str, Callable[[], ChatBackend]]:
    """The adapters to compare, openai SDK first (its row is the headline figure)."""
    no_retry = RetryPolicy(max_retries=0)  # a failure must show, not hide in a retry
    return {
        "openai-sdk": lambda: OpenAIBackend(
            MODEL, api_base=base_url, concurrency=concurrency, retry=no_retry
        ),
        "litellm": lambda: LiteLLMBackend(
            MODEL,
            api_base=base_url,
            concurrency=concurrency,
            retry=no_retry,
            supports_json_schema=True,
            supports_logprobs=True,
        ),
    }


@contextlib.contextmanager
def server_process(latency_s: float) -> Iterator[str]:
    """The test server in its own process (as a real LLM server would be): yields base_url.

    In-process, the server thread would compete with the client for the GIL and the
    benchmark would measure that contention instead of the client's overhead.
    """
    command = [sys.executable, "-m", "agent.llm.test_server", "--latency", str(latency_s)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"test server did not start (exit code {process.poll()})")
        yield base_url
    finally:
        process.terminate()
        process.wait(10)


def server_stats(base_url: str) -> dict[str, Any]:
    """The server's counters (requests, max_in_flight, faults) over HTTP."""
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/_stats", timeout=5) as reply:
        stats: dict[str, Any] = json.load(reply)
    return stats


def run_backends(args: argparse.Namespace) -> list[Row]:
    """Each adapter in turn, each on a fresh server process so counters are per adapter."""
    rows = []
    for name in ("openai-sdk", "litellm"):
        if name in args.skip:
            continue
        with server_process(args.latency) as base_url:
            backend = _backends(base_url, args.concurrency)[name]()
            elapsed, cpu, latencies = asyncio.run(_drive(backend, args.requests, args.concurrency))
            in_flight = server_stats(base_url)["max_in_flight"]
        rows.append(Row(name, args.requests, elapsed, latencies, cpu, in_flight))
    return rows


PATHS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {"backends": run_backends}


def _table(rows: list[Row], ideal: float) -> str:
    header = f"{'path':<12}{'requests':>9}{'seconds':>9}{'items/s':>9}{'ideal':>8}"
    header += f"{'eff.':>7}{'p50 ms':>8}{'p95 ms':>8}{'cpu ms/call':>12}{'in-flight':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        cuts = statistics.quantiles(row.latencies, n=20)
        lines.append(
            f"{row.name:<12}{row.requests:>9}{row.seconds:>9.2f}{row.rate:>9.1f}{ideal:>8.1f}"
            f"{row.efficiency(ideal):>7.3f}{statistics.median(row.latencies) * 1e3:>8.0f}"
            f"{cuts[18] * 1e3:>8.0f}{row.cpu_s / row.requests * 1e3:>12.2f}{row.max_in_flight:>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2, help="server latency, seconds")
    parser.add_argument("--path", choices=sorted(PATHS), default="backends")
    parser.add_argument("--skip", nargs="*", default=[], help="adapters to leave out")
    args = parser.parse_args(argv)
    ideal = args.concurrency / args.latency
    rows = PATHS[args.path](args)
    print(_table(rows, ideal))
    if not rows:
        raise SystemExit("nothing was run: every adapter was skipped")
    print(f"llm_efficiency={rows[0].efficiency(ideal):.3f}")


if __name__ == "__main__":
    main()
