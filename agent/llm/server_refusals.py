"""How real OpenAI-compatible servers refuse request features, for the test server.

Bodies as llama-cpp-python's server (HTTP 500 with a pydantic validation list for a
json_schema response_format), vLLM (400 "n must be 1") and OpenAI (400 with `param` and code
`unsupported_parameter`) send them, so that tests see what users' runs see.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


def refusal(body: dict[str, Any], refuse: tuple[str, ...]) -> web.Response | None:
    """The error a real server answers to a request feature it does not take, else None."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if "json_schema" in refuse and kind == "json_schema":  # llama-cpp-python's server
        detail = [
            {
                "type": "literal_error",
                "loc": ["body", "response_format", "type"],
                "msg": "Input should be 'text' or 'json_object'",
                "input": "json_schema",
            }
        ]
        message = f"response_format.type: Input should be 'text' or 'json_object': {detail}"
        return web.json_response(
            {"error": {"message": message, "type": "internal_server_error"}}, status=500
        )
    if "json_object" in refuse and kind is not None and kind != "text":
        return _refused(f"Unsupported value: 'response_format.type' {kind!r}", "response_format")
    if "n" in refuse and int(body.get("n") or 1) > 1:  # vLLM with greedy sampling
        message = "n must be 1 when using greedy sampling, got n=" + str(body.get("n"))
        return web.json_response(
            {"object": "error", "message": message, "type": "BadRequestError", "code": 400},
            status=400,
        )
    if "logprobs" in refuse and (body.get("logprobs") or body.get("top_logprobs")):
        return _refused("logprobs are not supported with this model", "logprobs")
    return None


def _refused(message: str, param: str) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param}
    return web.json_response({"error": {**error, "code": "unsupported_parameter"}}, status=400)
