"""The residency service: an OpenAI-compatible proxy in front of vLLM servers that share GPUs,
keeping at most `awake_per_gpu` models of each GPU awake and the others asleep (vLLM's sleep
mode), so that an arena holds more models than fit awake at once.

Routes: `POST /v1/chat/completions` and `/v1/completions` (the body's `model`, a served name or
an alias, picks the server; the answer streams through chunk by chunk, the server's errors
included), `GET /v1/models` (every name, aliases included), `GET /health` (200 while the
service runs, with each model's state), `GET /residency` (each model's GPU, state, requests,
last use) and `GET /metrics` (Prometheus).

A request waits until its model is awake (`control`: bounded by `wake_timeout_s`, then a 503
whose OpenAI-style error names the model and says why), is forwarded, and counts as in flight
until its answer has been sent; a model with requests in flight is never put to sleep.

One battle needs both its models awake at once. With `awake_per_gpu: 1` and both on one GPU,
FastChat sends the two requests together: the first wakes its model and streams; the second
waits until the first has finished (only then is that model idle and may be put to sleep), then
wakes its own. The battle answers one side after the other, and the second side gets a 503 if
the first takes longer than `wake_timeout_s`. The renderer is to refuse that combination.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from arenastack.residency.config import Config
from arenastack.residency.control import Residency, Unavailable, describe
from arenastack.residency.metrics import CONTENT_TYPE

# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's; uvicorn writes
# its own date and server.
NOT_FORWARDED = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "date",
    "server",
}


def create_app(config: Config) -> Starlette:
    residency = Residency(config)
    started = int(time.time())

    async def models(request: Request) -> Response:
        data = [
            {"id": name, "object": "model", "created": started, "owned_by": "arenastack"}
            for name in residency.routes
        ]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        states = {m.name: m.state for m in residency.policy.models.values()}
        return JSONResponse({"status": "ok", "models": states})

    async def residency_report(request: Request) -> Response:
        return JSONResponse(residency.report())

    async def metrics(request: Request) -> Response:
        text = residency.metrics.exposition(residency.policy.models.values())
        return Response(text, media_type=CONTENT_TYPE)

    forwarded = ["/v1/chat/completions", "/v1/completions"]
    app = Starlette(
        routes=[
            *(Route(path, _Forward(residency, path), methods=["POST"]) for path in forwarded),
            Route("/v1/models", models),
            Route("/health", health),
            Route("/residency", residency_report),
            Route("/metrics", metrics),
        ],
        lifespan=lambda app: residency.running(),
    )
    app.state.residency = residency
    return app


async def forward(residency: Residency, path: str, request: Request, send: Send) -> None:
    """Route by the body's `model`, wait until that model is awake, stream its answer back."""

    async def answer(response: Response) -> None:
        await response(request.scope, request.receive, send)

    content = await request.body()
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return await answer(_error(400, "the body must be a JSON object", "invalid_body", None))
    requested = body.get("model")
    model = residency.routes.get(requested) if isinstance(requested, str) else None
    if model is None:
        known = ", ".join(sorted(residency.routes))
        message = f"model {requested!r} is not served here (known: {known})"
        return await answer(_error(404, message, "model_not_found"))
    if requested != model.served_name:  # an alias: the server knows its served name only
        content = json.dumps({**body, "model": model.served_name}).encode()

    try:
        await residency.acquire(model.key)
    except Unavailable as error:
        return await answer(_error(503, str(error), "model_unavailable"))
    try:
        outgoing = residency.upstream.build_request(
            "POST", f"{model.url}{path}", content=content, headers=_forwardable(request.headers)
        )
        try:
            reply = await residency.upstream.send(outgoing, stream=True)
        except httpx.HTTPError as error:
            message = f"model {model.key!r}: its server did not answer: {describe(error, 0)}"
            return await answer(_error(502, message, "upstream_error"))
        try:
            # The server's status, headers and bytes as they come, an SSE stream included.
            headers = _forwardable(reply.headers)
            await answer(StreamingResponse(reply.aiter_raw(), reply.status_code, headers))
        finally:
            await reply.aclose()
    finally:
        await residency.release(model.key)


class _Forward:
    """A proxied route as a plain ASGI app (starlette hands an object that is not a function
    the raw scope): the request is released in a `finally` around the whole answer, so that
    it leaves the in-flight count however the stream ends, a client gone included."""

    def __init__(self, residency: Residency, path: str) -> None:
        self.residency, self.path = residency, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await forward(self.residency, self.path, Request(scope, receive), send)


def _error(status: int, message: str, code: str, param: str | None = "model") -> JSONResponse:
    """An error as OpenAI's API words it, so that clients show the message."""
    kind = "invalid_request_error" if status < 500 else "service_unavailable"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in NOT_FORWARDED}
