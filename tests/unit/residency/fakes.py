"""Fake vLLM servers for the residency tests, served for real over HTTP.

A `FakeVllm` answers what the residency service uses of vLLM (`/health`, `/is_sleeping`,
`/sleep?level=`, `/wake_up`, `/v1/models`, `/v1/chat/completions` and `/v1/completions`, with
and without `stream: true`) and keeps an account: awake or asleep, the memory it would hold,
requests in flight, every /sleep and /wake_up, and the violations it saw (a request served
while asleep, a /sleep while requests were in flight). A `Monitor` shared by the fakes of a test
records the most models awake at once on each GPU; a fake counts as awake from the moment its
/wake_up arrives until its /sleep has finished, as a real server's memory would.

`Served` runs an ASGI app under uvicorn on 127.0.0.1 in a thread of its own, on a socket bound
before the thread starts (port 0: no race for a free port).

In a container (tests/live/test_residency.py) one fake is a whole server:

    python -m tests.unit.residency.fakes --name SERVED_NAME --gpu 0 [--port 8000]
        [--wake-delay-s 0.3] [--fail-to-wake error] [--start-delay-s 0]

and `GET /account` answers its account, with the wall-clock intervals it was awake, so that a
test can tell how many fakes of a GPU were awake at once across containers; `POST
/fault?wake=error` makes its wakes fail from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

AWAKE_MEMORY, ASLEEP_MEMORY = 10, 1
# Words of a reply, streamed one chunk each; the short pauses let streams of several models
# overlap, as real generations do.
CHUNK_PAUSE_S = 0.01


class Monitor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._awake: dict[str, set[str]] = defaultdict(set)
        self.most_awake: dict[str, int] = defaultdict(int)
        # Wall-clock [from, until] of each time a fake was awake (until None while it is).
        self.intervals: dict[str, list[list[float | None]]] = defaultdict(list)

    def set_awake(self, gpu: str, name: str, awake: bool) -> None:
        with self._lock:
            was = name in self._awake[gpu]
            (self._awake[gpu].add if awake else self._awake[gpu].discard)(name)
            self.most_awake[gpu] = max(self.most_awake[gpu], len(self._awake[gpu]))
            if awake and not was:
                self.intervals[name].append([time.time(), None])
            elif was and not awake:
                self.intervals[name][-1][1] = time.time()


class FakeVllm:
    def __init__(
        self,
        name: str,
        gpu: str,
        monitor: Monitor,
        *,
        awake: bool = True,
        healthy: bool = True,
        wake_delay_s: float = 0.05,
        sleep_delay_s: float = 0.02,
        fail_to_wake: str | None = None,
        dev_mode: bool = True,
        stream_gate: threading.Event | None = None,
    ) -> None:
        """`fail_to_wake`: None, "error" (/wake_up answers 500), "stays_asleep" (it answers
        200 but /is_sleeping stays true) or "hang" (it never answers). Without `dev_mode`
        there are no sleep-mode endpoints, as vLLM without VLLM_SERVER_DEV_MODE=1. A stream
        holds after its first chunk until `stream_gate` is set (at most 30 s)."""
        self.name, self.gpu, self.monitor = name, gpu, monitor
        self.awake, self.healthy = awake, healthy
        self.wake_delay_s, self.sleep_delay_s = wake_delay_s, sleep_delay_s
        self.fail_to_wake, self.dev_mode = fail_to_wake, dev_mode
        self.stream_gate = stream_gate
        self.in_flight = 0
        self.wakes = 0
        self.sleeps = 0
        self.sleep_levels: list[int] = []
        self.served = 0
        self.violations: list[str] = []
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        monitor.set_awake(gpu, name, awake)

    @property
    def memory(self) -> int:
        return AWAKE_MEMORY if self.awake else ASLEEP_MEMORY

    def release_hangs(self) -> None:
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
            yield

        routes = [
            Route("/health", self._health),
            Route("/v1/models", self._models),
            Route("/v1/chat/completions", self._completion("chat"), methods=["POST"]),
            Route("/v1/completions", self._completion("text"), methods=["POST"]),
        ]
        routes += [
            Route("/account", self._account),
            Route("/fault", self._fault, methods=["POST"]),
        ]
        if self.dev_mode:
            routes += [
                Route("/is_sleeping", self._is_sleeping),
                Route("/sleep", self._sleep, methods=["POST"]),
                Route("/wake_up", self._wake_up, methods=["POST"]),
            ]
        return Starlette(routes=routes, lifespan=lifespan)

    def reply_text(self) -> str:
        return f"reply from {self.name}"

    # --- endpoints --------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200 if self.healthy else 503)

    async def _account(self, request: Request) -> Response:
        return JSONResponse(
            {
                "name": self.name,
                "gpu": self.gpu,
                "awake": self.awake,
                "wakes": self.wakes,
                "sleeps": self.sleeps,
                "sleep_levels": self.sleep_levels,
                "served": self.served,
                "violations": self.violations,
                "awake_intervals": self.monitor.intervals[self.name],
            }
        )

    async def _fault(self, request: Request) -> Response:
        """`POST /fault?wake=error` makes its next wakes fail; `wake=none` mends it."""
        wake = request.query_params.get("wake", "none")
        self.fail_to_wake = None if wake == "none" else wake
        return JSONResponse({"fail_to_wake": self.fail_to_wake})

    async def _is_sleeping(self, request: Request) -> Response:
        return JSONResponse({"is_sleeping": not self.awake})

    async def _sleep(self, request: Request) -> Response:
        level = int(request.query_params.get("level", "1"))
        self.sleeps += 1
        self.sleep_levels.append(level)
        if self.in_flight:
            self.violations.append(f"/sleep with {self.in_flight} request(s) in flight")
        self.awake = False  # a request from now on is served while asleep
        await asyncio.sleep(self.sleep_delay_s)
        self.monitor.set_awake(self.gpu, self.name, False)  # its memory is free only now
        return JSONResponse({"status": "sleeping", "level": level})

    async def _wake_up(self, request: Request) -> Response:
        self.wakes += 1
        if self.fail_to_wake == "hang":
            assert self._release is not None
            await self._release.wait()
            return Response(status_code=500)
        self.monitor.set_awake(self.gpu, self.name, True)  # its memory fills from now on
        await asyncio.sleep(self.wake_delay_s)
        if self.fail_to_wake == "error":
            self.monitor.set_awake(self.gpu, self.name, False)
            return JSONResponse({"error": "CUDA out of memory (fake)"}, status_code=500)
        if self.fail_to_wake == "stays_asleep":
            self.monitor.set_awake(self.gpu, self.name, False)
        else:
            self.awake = True
        return JSONResponse({"status": "awake" if self.awake else "sleeping"})

    async def _models(self, request: Request) -> Response:
        data = [{"id": self.name, "object": "model", "owned_by": "vllm"}]
        return JSONResponse({"object": "list", "data": data})

    def _completion(self, kind: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            body = await request.json()
            if body.get("model") != self.name:  # as vLLM: it knows its served name only
                error = {"message": f"The model `{body.get('model')}` does not exist."}
                return JSONResponse({"object": "error", **error}, status_code=404)
            if body.get("max_tokens") == -1:  # as vLLM's validation answers
                error = {"message": "max_tokens must be at least 1, got -1."}
                return JSONResponse({"object": "error", **error}, status_code=400)
            if not self.awake:
                self.violations.append(f"a request for {self.name} served while asleep")
                return JSONResponse({"object": "error", "message": "sleeping"}, status_code=503)
            self.in_flight += 1
            self.served += 1
            if body.get("stream"):
                return StreamingResponse(self._stream(kind), media_type="text/event-stream")
            try:
                await asyncio.sleep(CHUNK_PAUSE_S)
                return JSONResponse(self._answer(kind, self.reply_text()))
            finally:
                self.in_flight -= 1

        return endpoint

    async def _stream(self, kind: str) -> AsyncIterator[bytes]:
        try:
            for index, word in enumerate(self.reply_text().split(" ")):
                if index == 1 and self.stream_gate is not None:
                    await asyncio.to_thread(self.stream_gate.wait, 30)
                if index:
                    await asyncio.sleep(CHUNK_PAUSE_S)
                    word = " " + word
                yield f"data: {json.dumps(self._answer(kind, word, chunk=True))}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:
            self.in_flight -= 1

    def _answer(self, kind: str, text: str, chunk: bool = False) -> dict[str, Any]:
        if kind == "text":
            choice: dict[str, Any] = {"index": 0, "text": text}
        elif chunk:
            choice = {"index": 0, "delta": {"content": text}}
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        kind_name = ("text_completion" if kind == "text" else "chat.completion") + (
            ".chunk" if chunk else ""
        )
        return {"object": kind_name, "model": self.name, "choices": [choice]}


class Served:
    def __init__(self, app: Any) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        wait_for(lambda: self.server.started, 30, f"uvicorn on {self.url} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def wait_for(condition: Callable[[], bool], timeout_s: float, failure: str) -> None:
    """Until `condition()` holds (a state another thread changes), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.unit.residency.fakes")
    parser.add_argument("--name", required=True, help="the served model name")
    parser.add_argument("--gpu", default="0")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--wake-delay-s", type=float, default=0.3)
    parser.add_argument("--sleep-delay-s", type=float, default=0.1)
    parser.add_argument("--fail-to-wake", choices=("error", "stays_asleep", "hang"))
    parser.add_argument("--start-delay-s", type=float, default=0.0, help="as loading weights")
    args = parser.parse_args(argv)
    fake = FakeVllm(
        args.name,
        args.gpu,
        Monitor(),
        wake_delay_s=args.wake_delay_s,
        sleep_delay_s=args.sleep_delay_s,
        fail_to_wake=args.fail_to_wake,
    )
    time.sleep(args.start_delay_s)
    uvicorn.run(fake.app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
