"""An OpenAI-compatible chat server on 127.0.0.1 with fault knobs, for tests and benchmarks.

It runs aiohttp in a background thread on a free port (`with LLMTestServer() as server:`),
answers `/v1/chat/completions` and `/v1/models` (and Ollama's native `/api/chat` and
`/api/generate`, one choice each, see `test_server_ollama`), and records every request so tests
can assert what was sent, how many calls arrived and how many were in flight at once.

Faults, per server (`server.script(...)`, consumed one per request) or per request (header
`x-test-fault`): "ok", "429[:retry_after]", any other status "NNN", "hang[:seconds]",
"malformed" (a broken JSON body), "empty" (valid JSON without choices), "bad_label" (a label
outside the schema's enum), "context_length" (OpenAI's 400 `context_length_exceeded`).
Header `x-test-latency` overrides the server's latency for one request. `knobs.refuse` names
request features the server refuses the way real servers do (see `refusal`): "json_schema"
(llama-cpp-python's server: HTTP 500 with a pydantic validation list), "json_object" (any
response_format: 400 unsupported_parameter), "n" (vLLM: 400 "n must be 1"), "logprobs" (400
with `param`); `knobs.ignore_n` answers one choice whatever `n` asks, as Ollama does. With
`knobs.context_chars` set, every request whose messages hold more characters than that gets
the same 400, like a model with a small context window.

Out of process (benchmarks, manual runs): `python -m agent.llm.test_server --latency 0.2`
prints its base URL and serves `/_stats` (the counters as JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from agent.llm.server_refusals import refusal
from agent.llm.test_server_ollama import OLLAMA_ROUTES, to_ollama, to_openai

Policy = Callable[[dict[str, Any]], str]
FAULT_HEADER = "x-test-fault"
LATENCY_HEADER = "x-test-latency"
MAX_BODY_BYTES = 64 * 1024 * 1024  # aiohttp's 1 MiB default would answer 413 to big prompts


@dataclass
class Knobs:
    """Server-wide behaviour; change fields at any time (`server.knobs.latency_s = 0.2`)."""

    latency_s: float = 0.0
    logprobs: bool = True  # answer token logprobs when the request asks for them
    label_prob: float = 0.9  # probability given to the label token in logprobs
    label_probs: dict[str, float] = field(default_factory=dict)  # per label, over label_prob
    usage: tuple[int, int] | None = None  # fixed (prompt, completion) tokens; None = chars / 4
    retry_after: str = "1"  # Retry-After header sent with an injected 429
    hang_s: float = 30.0  # how long a "hang" fault stalls before answering
    bad_label: str = "not_a_label"
    api_key: str | None = None  # when set, requests must carry `Authorization: Bearer <key>`
    model_ids: tuple[str, ...] = ("test-model",)
    record: bool = True  # keep request bodies and headers in `stats` (off for long runs)
    context_chars: int | None = None  # prompts longer than this get 400 context_length_exceeded
    refuse: tuple[str, ...] = ()  # json_schema | json_object | n | logprobs (see `refusal`)
    ignore_n: bool = False  # one choice whatever `n` asks (a server without sampling in bulk)
    serial: bool = False  # answer one request at a time, like a llama.cpp server on 2 cores


@dataclass
class Stats:
    """What the server saw; read from the test thread (ints and lists, updated on one loop)."""

    requests: int = 0  # chat completion requests received
    in_flight: int = 0
    max_in_flight: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def schema_labels(body: dict[str, Any]) -> list[str]:
    """The enum of the first `label` property in the request's json_schema, else in a schema
    the prompt carries (where the endpoint took no json_schema); [] if none."""
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    return _find_label_enum(schema, schema) or _prompt_enum(body)


def _prompt_enum(body: dict[str, Any]) -> list[str]:
    """The first label enum of a JSON schema written into the messages ([] if none)."""
    for message in body.get("messages") or []:
        content = str(message.get("content") or "") if isinstance(message, dict) else ""
        marker = content.find("JSON schema:")
        start = content.find("{", marker) if marker >= 0 else -1
        if start < 0:
            continue
        try:
            schema, _ = json.JSONDecoder().raw_decode(content, start)
        except ValueError:
            continue
        if found := _find_label_enum(schema, schema):
            return found
    return []


def _find_label_enum(node: Any, root: dict[str, Any]) -> list[str]:
    """Depth-first search for properties.label.enum, following local $refs."""
    if isinstance(node, list):
        for child in node:
            if found := _find_label_enum(child, root):
                return found
        return []
    if not isinstance(node, dict):
        return []
    label = (node.get("properties") or {}).get("label")
    if isinstance(label, dict):
        label = _resolve_ref(label, root)
        if isinstance(label.get("enum"), list):
            return [str(v) for v in label["enum"]]
    for child in node.values():
        if found := _find_label_enum(child, root):
            return found
    return []


def _resolve_ref(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else node


def default_policy(body: dict[str, Any]) -> str:
    """Answer the first label of the schema's enum with a stated confidence of 0.9."""
    labels = schema_labels(body) or ["unknown"]
    answer = {"label": labels[0], "confidence": 0.9, "rationale": "first label in the schema"}
    return json.dumps(answer)


def token_logprobs(
    text: str, labels: list[str], label_prob: float, top_n: int,
    label_probs: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Split a reply into a few tokens; each label token (the one label, or every label of a
    multi-label answer's "labels" list) gets log(its probability in `label_probs`, else
    `label_prob`) and enum rivals sharing the rest."""
    pieces: list[tuple[str, bool]] = []
    spans, done = _label_spans(text), 0
    for label, start in spans:
        pieces += [(tok, False) for tok in re.findall(r"\S+\s*", text[done:start])]
        pieces.append((label, True))
        done = start + len(label)
    tail = r"\S+\s*|\s+" if spans else r"\S+\s*"  # as single-label replies always were
    pieces += [(tok, False) for tok in re.findall(tail, text[done:])]
    out = []
    for tok, is_label in pieces:
        if is_label:
            prob = (label_probs or {}).get(tok, label_prob)
            rivals = [lab for lab in labels if lab != tok]
            share = (1.0 - prob) / max(1, len(rivals))
            alts = [(tok, prob)] + [(lab, share) for lab in rivals]
        else:
            alts = [(tok, 0.999)]
        top = [_entry(t, math.log(max(p, 1e-12))) for t, p in alts[:top_n]]
        out.append({**_entry(tok, math.log(alts[0][1])), "top_logprobs": top})
    return out


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def _label_spans(text: str) -> list[tuple[str, int]]:
    """(label value, where it starts) of a JSON reply's label, or of each label in a
    multi-label answer's "labels" list, in order ([] if none)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return []
    if not isinstance(parsed, dict):
        return []
    if isinstance(parsed.get("labels"), list):
        wanted = [e.get("label") for e in parsed["labels"] if isinstance(e, dict)]
    else:
        wanted = [parsed.get("label")]
    spans: list[tuple[str, int]] = []
    for key in re.finditer(r'"label"\s*:\s*"', text):
        if len(spans) == len(wanted):
            break
        label = wanted[len(spans)]
        if not isinstance(label, str) or not label or not text.startswith(label, key.end()):
            return []
        spans.append((label, key.end()))
    return spans if len(spans) == len(wanted) else []


class LLMTestServer:
    """The server; use as a context manager. `base_url` ends in /v1 (what SDKs expect)."""

    def __init__(self, policy: Policy | None = None, **knobs: Any) -> None:
        self.policy: Policy = policy or default_policy
        self.knobs = Knobs(**knobs)
        self.stats = Stats()
        self._script: deque[str] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._serial = asyncio.Lock()  # binds to the server loop on first use
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *faults: str) -> None:
        """Queue faults for the next requests, one each, in order ("ok" for a normal answer)."""
        self._script.extend(faults)

    def reset(self) -> None:
        """Forget what was seen and any faults still queued."""
        self.stats = Stats()
        self._script.clear()

    def __enter__(self) -> LLMTestServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Bind a free port, start serving in a daemon thread, return the base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready), name="llm-test-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("LLM test server did not start within 10 s")
        return self.base_url

    def stop(self) -> None:
        """Stop serving, cancel stalled handlers and join the thread."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = self._thread = None

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        assert self._loop is not None
        loop = self._loop
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        for route in OLLAMA_ROUTES:
            app.router.add_post(route, self._chat)
        app.router.add_get("/_stats", self._stats)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.2
        )
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.SockSite(self._runner, sock).start())
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "owned_by": "labelagent-test"}
            for m in self.knobs.model_ids
        ]
        return web.json_response({"object": "list", "data": data})

    async def _stats(self, request: web.Request) -> web.Response:
        """Counters as JSON, for a server running in another process (see `main`)."""
        stats = self.stats
        return web.json_response(
            {
                "requests": stats.requests,
                "in_flight": stats.in_flight,
                "max_in_flight": stats.max_in_flight,
                "faults": dict(stats.faults),
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self._answer(request, stats)
        finally:
            stats.in_flight -= 1

    async def _answer(self, request: web.Request, stats: Stats) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        ollama = OLLAMA_ROUTES.get(request.path)
        if ollama is None:
            return await self._respond(request, body, stats)
        response = await self._respond(request, to_openai(body), stats)
        if response.status != 200 or not isinstance(response, web.Response):
            return response
        return web.json_response(to_ollama(ollama, json.loads(response.text or "{}")))

    async def _respond(
        self, request: web.Request, body: dict[str, Any], stats: Stats
    ) -> web.StreamResponse:
        if self.knobs.record:
            stats.bodies.append(body)
            stats.headers.append({k.lower(): v for k, v in request.headers.items()})
        fault = request.headers.get(FAULT_HEADER) or (
            self._script.popleft() if self._script else "ok"
        )
        limit = self.knobs.context_chars
        if limit is not None and _prompt_chars(body) > limit:
            fault = "context_length"
        refused = refusal(body, self.knobs.refuse)
        if refused is not None:
            stats.faults["refused"] += 1
            return refused
        stats.faults[fault.split(":")[0]] += 1
        latency = float(request.headers.get(LATENCY_HEADER, self.knobs.latency_s))
        if latency > 0:
            if self.knobs.serial:
                async with self._serial:
                    await asyncio.sleep(latency)
            else:
                await asyncio.sleep(latency)
        if (
            self.knobs.api_key
            and request.headers.get("Authorization") != f"Bearer {self.knobs.api_key}"
        ):
            return _error(401, "Incorrect API key provided", "invalid_request_error")
        return await self._fault(fault, body)

    async def _fault(self, fault: str, body: dict[str, Any]) -> web.StreamResponse:
        kind, _, arg = fault.partition(":")
        if kind == "hang":
            await asyncio.sleep(float(arg or self.knobs.hang_s))
        elif kind == "empty":
            return web.json_response(
                {"id": "chatcmpl-empty", "object": "chat.completion", "choices": []}
            )
        elif kind == "context_length":
            return _context_length_error(_prompt_chars(body), self.knobs.context_chars)
        elif kind == "malformed":
            return web.Response(
                text='{"id": "chatcmpl-broken", "choices": [{"mess', content_type="application/json"
            )
        elif kind.isdigit():
            status = int(kind)
            headers = {"Retry-After": arg or self.knobs.retry_after} if status == 429 else {}
            return _error(status, f"injected HTTP {status}", "server_error", headers)
        return web.json_response(self._completion(body, bad_label=kind == "bad_label"))

    def _completion(self, body: dict[str, Any], *, bad_label: bool) -> dict[str, Any]:
        """A chat.completion object with `n` choices, usage and optional logprobs."""
        labels = schema_labels(body)
        want_logprobs = bool(body.get("logprobs")) and self.knobs.logprobs
        top_n = int(body.get("top_logprobs") or 0)
        choices = []
        for index in range(1 if self.knobs.ignore_n else int(body.get("n") or 1)):
            text = self.policy(body)
            if bad_label:
                text = json.dumps(
                    {"label": self.knobs.bad_label, "confidence": 0.9, "rationale": "x"}
                )
            logprobs = None
            if want_logprobs:
                content = token_logprobs(text, labels, self.knobs.label_prob, top_n,
                                         self.knobs.label_probs)  # fmt: skip
                logprobs = {"content": content}
            message = {"role": "assistant", "content": text}
            choices.append(
                {"index": index, "message": message, "finish_reason": "stop", "logprobs": logprobs}
            )
        prompt, completion = self.knobs.usage or _count_tokens(body, choices)
        return {
            "id": f"chatcmpl-{self.stats.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "")),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


def _prompt_chars(body: dict[str, Any]) -> int:
    """Characters in the request's messages (what a context window limits, 4 to a token)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))


def _count_tokens(body: dict[str, Any], choices: list[dict[str, Any]]) -> tuple[int, int]:
    """Rough token counts (4 characters a token), enough for cost and TPM tests."""
    completion_chars = sum(len(c["message"]["content"]) for c in choices)
    return _prompt_chars(body) // 4 + 1, completion_chars // 4 + 1


def _context_length_error(prompt_chars: int, limit_chars: int | None) -> web.Response:
    """OpenAI's answer to a prompt longer than the model's context window, word for word."""
    limit = (limit_chars or 0) // 4
    message = (
        f"This model's maximum context length is {limit} tokens. However, your messages "
        f"resulted in {prompt_chars // 4 + 1} tokens. Please reduce the length of the messages."
    )
    error = {"message": message, "type": "invalid_request_error", "param": "messages"}
    return web.json_response({"error": {**error, "code": "context_length_exceeded"}}, status=400)


def _error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    payload = {"error": {"message": message, "type": kind, "code": str(status)}}
    return web.json_response(payload, status=status, headers=headers)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted: `python -m agent.llm.test_server --latency 0.2`.

    Prints the base URL as the first line of stdout, so a parent process can read it.
    """
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server on 127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--no-logprobs", action="store_true", help="never answer logprobs")
    parser.add_argument("--record", action="store_true", help="keep request bodies in memory")
    parser.add_argument("--context-chars", type=int, help="refuse longer prompts with a 400")
    parser.add_argument("--refuse", default="", help="json_schema,json_object,n,logprobs")
    args = parser.parse_args(argv)
    server = LLMTestServer(
        latency_s=args.latency,
        logprobs=not args.no_logprobs,
        record=args.record,
        context_chars=args.context_chars,
        refuse=tuple(f for f in args.refuse.split(",") if f),
    )
    with server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
