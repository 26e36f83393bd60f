"""A scripted ChatBackend for unit tests: replies come from a queue or a function.

Every request is recorded. A reply may be a text (copied into `n` choices), a list of texts
(one per choice), a ready ChatResponse, or an exception instance, which is raised instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from agent.errors import LLMError
from agent.llm.protocol import ChatChoice, ChatRequest, ChatResponse, Usage

Reply = str | list[str] | ChatResponse | BaseException
ReplyFn = Callable[[ChatRequest], Reply]


def _tokens(text: str) -> int:
    """A rough token count (4 characters a token) so usage and cost are never zero."""
    return len(text) // 4 + 1


class ScriptedBackend:
    """Answers from a script; `requests` holds every ChatRequest in the order received."""

    def __init__(
        self,
        replies: Iterable[Reply] | ReplyFn = (),
        *,
        model: str = "scripted",
        supports_json_schema: bool = True,
        supports_logprobs: bool = False,
        cost_per_token_usd: float = 0.0,
    ) -> None:
        self.model = model
        self.supports_json_schema = supports_json_schema
        self.supports_logprobs = supports_logprobs
        self.cost_per_token_usd = cost_per_token_usd
        self.requests: list[ChatRequest] = []
        self.closed = False
        self._fn: ReplyFn | None = replies if callable(replies) else None
        self._queue: deque[Reply] = deque() if callable(replies) else deque(replies)

    @property
    def calls(self) -> int:
        return len(self.requests)

    def push(self, *replies: Reply) -> None:
        """Append replies to the queue (used before the function, if both are set)."""
        self._queue.extend(replies)

    def _next(self, request: ChatRequest) -> Reply:
        if self._queue:
            return self._queue.popleft()
        if self._fn is not None:
            return self._fn(request)
        raise LLMError(f"scripted backend ran out of replies at call {self.calls}", attempts=1)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Record the request and answer with the next scripted reply (or raise it)."""
        self.requests.append(request)
        reply = self._next(request)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, ChatResponse):
            return reply
        texts = [reply] * request.n if isinstance(reply, str) else list(reply)
        prompt = sum(_tokens(m.get("content") or "") for m in request.messages)
        usage = Usage(prompt_tokens=prompt, completion_tokens=sum(_tokens(t) for t in texts))
        return ChatResponse(
            choices=[ChatChoice(text=text, finish_reason="stop") for text in texts],
            usage=usage,
            cost_usd=usage.total_tokens * self.cost_per_token_usd,
            model=self.model,
        )

    async def aclose(self) -> None:
        self.closed = True
