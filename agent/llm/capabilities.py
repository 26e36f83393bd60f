"""What an OpenAI-compatible endpoint accepts, learnt once and remembered per endpoint and model.

Structured output falls back in order json_schema -> json_object (the schema goes into the
prompt) -> text (JSON parsed from the reply and validated the same way); `n` falls back to one
sample per call; logprobs fall back to self-consistency (the labeller chooses its method from
`logprobs`). A refusal (`RefusedField`) drops one field at a time; `probe` sends one small
request at the start of a run so that the labeller is built knowing what the endpoint can do.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, TypeVar

from agent.llm.protocol import ChatRequest, ChatResponse
from agent.llm.refusals import RefusedField

T = TypeVar("T")

MODES = ("json_schema", "json_object", "text")
SETTING_MODES = ("auto", *MODES)
_PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["yes", "no"]},
        "confidence": {"type": "number"},
        "rationale": {"type": "string"},
    },
    "required": ["label", "confidence", "rationale"],
    "additionalProperties": False,
}
_PROBE = ChatRequest(
    messages=[
        {
            "role": "user",
            "content": 'Is the sky blue? Answer with one JSON object: {"label": "yes" or "no", '
            '"confidence": a number from 0 to 1, "rationale": ""}',
        }
    ],
    response_schema=_PROBE_SCHEMA,
    schema_name="probe",
    n=2,
    temperature=0.7,
    max_tokens=48,
    logprobs=True,
    top_logprobs=2,
)


@dataclass
class Capabilities:
    """What the endpoint takes; `probed` once a probe (or a stored record) says so."""

    structured: str = "json_schema"  # json_schema | json_object | text
    logprobs: bool = True
    n: bool = True
    latency_s: float | None = None
    probed: bool = False
    pinned: bool = False  # structured output set by llm.structured_output, never downgraded

    def drop(self, field: str) -> bool:
        """Give up what `field` asks for; False when nothing is left to give up."""
        if field == "response_format" and not self.pinned and self.structured != "text":
            self.structured = MODES[MODES.index(self.structured) + 1]
            return True
        if field in ("logprobs", "top_logprobs") and self.logprobs:
            self.logprobs = False
            return True
        if field == "n" and self.n:
            self.n = False
            return True
        return False

    def moved_since(self, before: Capabilities, field: str) -> bool:
        """Whether what `field` asks for was given up after `before` (by a concurrent call)."""
        if field == "response_format":
            return self.structured != before.structured
        if field in ("logprobs", "top_logprobs"):
            return self.logprobs != before.logprobs
        return field == "n" and self.n != before.n

    def line(self, endpoint: str) -> str:
        """One line for `estimate` and the start of `run`."""
        latency = f"{self.latency_s:.2f} s" if self.latency_s is not None else "not measured"
        how = "probed" if self.probed else "as documented"
        return (
            f"endpoint {endpoint}: structured output {self.structured}, logprobs "
            f"{'yes' if self.logprobs else 'no'}, samples per call "
            f"{'n' if self.n else '1'}, latency {latency} ({how})"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capabilities:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        caps = cls(**known)
        if caps.structured not in MODES:
            caps.structured = "text"
        return caps


def initial(setting: str, *, json_schema: bool = True) -> Capabilities:
    """Capabilities before anything is known: `setting` is llm.structured_output."""
    if setting == "auto":
        return Capabilities(structured="json_schema" if json_schema else "text")
    return Capabilities(structured=setting, pinned=True)


def schema_note(schema: dict[str, Any]) -> str:
    """The instruction that carries the schema where the endpoint does not take it."""
    return (
        "Reply with one JSON object only, no other text, that matches this JSON schema:\n"
        + json.dumps(schema, separators=(",", ":"))
    )


def with_schema_in_prompt(request: ChatRequest) -> list[dict[str, str]]:
    """The request's messages with the schema instruction added to the first system message."""
    if request.response_schema is None:
        return request.messages
    note = schema_note(request.response_schema)
    messages = [dict(m) for m in request.messages]
    for message in messages:
        if message.get("role") == "system":
            message["content"] = f"{message.get('content') or ''}\n\n{note}"
            return messages
    return [{"role": "system", "content": note}, *messages]


class Probed(Protocol):
    """A backend that learns from refusals (`caps`) and answers chat requests."""

    model: str
    api_base: str | None
    caps: Capabilities

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


class MetaStore(Protocol):
    def get_meta(self, key: str, default: Any = None) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...


def meta_key(backend: Probed) -> str:
    return f"llm_endpoint:{backend.api_base or 'default'}|{backend.model}"


async def probe(backend: Probed) -> Capabilities:
    """One small request with everything asked for; refusals drop fields inside `complete`,
    and what a server silently ignores (`n`, logprobs) is read from the reply."""
    request = _PROBE if backend.caps.n else replace(_PROBE, n=1)
    started = time.monotonic()
    response = await backend.complete(request)
    caps = backend.caps
    caps.latency_s = time.monotonic() - started
    if len(response.choices) < 2:
        caps.n = False
    if not any(choice.logprobs for choice in response.choices):
        caps.logprobs = False
    caps.probed = True
    return caps


def known(backend: Probed, store: MetaStore | None) -> bool:
    """Load what the project remembers about this endpoint into `backend.caps`; True if any."""
    stored = store.get_meta(meta_key(backend)) if store is not None else None
    if not isinstance(stored, dict):
        return False
    remembered = Capabilities.from_json(stored)
    if backend.caps.pinned:
        remembered.structured, remembered.pinned = backend.caps.structured, True
    if not backend.caps.logprobs:  # not to be asked for (llm.logprobs: never, the provider)
        remembered.logprobs = False
    backend.caps = remembered
    return True


def remember(backend: Probed, store: MetaStore | None) -> None:
    if store is not None:
        store.set_meta(meta_key(backend), backend.caps.to_json())


async def with_fallback(caps: Capabilities, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` (which builds its request from `caps`); on a refused field drop that field
    and try again at once, else raise one line naming the field and the setting that fixes it.
    Calls in flight together may all be refused: the field is dropped once, not once each."""
    while True:
        before = replace(caps)
        try:
            return await attempt()
        except RefusedField as exc:
            if caps.moved_since(before, exc.field):
                continue  # a call in flight at the same time already gave it up
            if not caps.drop(exc.field):
                raise RefusedField(
                    f"{exc}; the endpoint does not take request field '{exc.field}' "
                    f"and nothing is left to drop: set {exc.advice()}",
                    exc.field,
                    attempts=exc.attempts,
                    raw=exc.raw,
                ) from None


def ensure(backend: Any, store: MetaStore | None, *, send_probe: bool = True) -> str | None:
    """Settle what the configured endpoint takes before labelling starts, and say it in one
    line: remembered in the project, else probed once (self-hosted endpoints, `api_base`
    set; with `send_probe` False the run's own first calls teach it, see `settle`), else as
    documented (hosted APIs). None for backends that do not learn (simulators)."""
    if callable(getattr(backend, "describe", None)):  # in-process models say what they are
        return str(backend.describe())
    if not isinstance(getattr(backend, "caps", None), Capabilities):
        return None
    endpoint = f"{backend.api_base or 'hosted'} ({backend.model})"
    if known(backend, store):
        return backend.caps.line(endpoint) + ", remembered"
    if backend.api_base is None:
        return str(backend.caps.line(endpoint))
    if not send_probe:
        return f"endpoint {endpoint}: not known yet; the first calls show what it takes"

    async def run() -> None:
        try:
            await probe(backend)
        finally:
            await backend.aclose()

    asyncio.run(run())
    remember(backend, store)
    return str(backend.caps.line(endpoint))


def settle(backend: Any, store: MetaStore | None) -> str | None:
    """After a run whose calls taught `backend.caps` (refusals dropped fields), remember it
    with the best latency seen, and say it in one line; None where nothing was to learn."""
    caps = getattr(backend, "caps", None)
    if not isinstance(caps, Capabilities) or backend.api_base is None or caps.probed:
        return None
    guard = getattr(backend, "guard", None)
    best = guard.limit.best_latency_s if guard is not None else None
    if best is None:  # no call answered: nothing learnt
        return None
    caps.latency_s, caps.probed = best, True
    remember(backend, store)
    return str(caps.line(f"{backend.api_base} ({backend.model})")).replace("(probed)", "(learnt)")


class CapabilityView:
    """`supports_logprobs` (the ChatBackend protocol's) read from and written to `caps`, for
    adapters whose endpoint capabilities are learnt."""

    caps: Capabilities

    @property
    def supports_logprobs(self) -> bool:
        return self.caps.logprobs

    @supports_logprobs.setter
    def supports_logprobs(self, value: bool) -> None:
        self.caps.logprobs = value
