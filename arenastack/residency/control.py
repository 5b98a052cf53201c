"""Residency carried out: the policy (`policy`) behind one asyncio.Condition, the tasks that
wake models and put them to sleep, the start-up watch of each server, and the HTTP clients.

How a request waits: `acquire` returns once its model is awake and the request is counted in
flight, and `release` ends that. Everything that waits (requests, and nothing else) waits on the
Condition that guards the policy and is notified on every change (a wake or a sleep ends, a
request finishes or gives up, a server comes up), for at most `wake_timeout_s` from its
arrival; then its caller is told why (`Unavailable`). A wake or a sleep runs as a task of its
own, one per model however many requests wait for it.

A wake that fails (an error, no answer within `wake_timeout_s`, or /is_sleeping still true)
marks the model `failed`: its requests are refused at once for `failed_backoff_s`, then a wake
is tried again. A failed model is counted as holding no slot on its GPU, so the others go on
waking and answering. The risk taken: a server whose wake failed halfway may still hold part of
its memory, and the next wake on that GPU may then fail too (and say so).

Start-up: a task per model asks its /health until it answers 200 (a remote server coming up,
so it is asked every `health_poll_s`), then reads /is_sleeping. Until then the model is
`starting`, holds its slot (it is loading), and its requests wait like any other (bounded) and
are then refused naming it. Every server comes up awake, so the policy's `trim` puts to sleep
each idle model of an earlier start-up wave while a later wave is still starting, and, while a
GPU has more awake models than it may, the extra idle ones, the most recently healthy first. A
server that never comes up keeps its slot: the service cannot tell one still loading from one
gone, and counting it free could wake a model into memory that is being filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx

from arenastack.residency import sleep_mode
from arenastack.residency.config import Config, ModelConfig
from arenastack.residency.metrics import Metrics
from arenastack.residency.policy import FAILED, Decision, Policy, Verdict

log = logging.getLogger(__name__)

# A /health that hangs at start-up is given up and asked again.
HEALTH_TIMEOUT_S = 10.0


class Unavailable(Exception):
    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"model {model!r} is unavailable: {reason}")


class Residency:
    """The policy, the tasks that carry out its decisions, and the clients they use."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.models = {m.key: m for m in config.models}
        self.routes = config.routes()
        gpus = {m.key: m.gpu for m in config.models}
        waves = {m.key: m.wave for m in config.models}
        self.policy = Policy(gpus, config.awake_per_gpu, config.failed_backoff_s, clock, waves)
        self.metrics = Metrics(gpus.items())
        self.changed = asyncio.Condition()
        # trust_env off: the servers are on the stack's own network, never behind HTTP_PROXY.
        self.sleep_mode_client = httpx.AsyncClient(timeout=config.wake_timeout_s, trust_env=False)
        self.upstream = httpx.AsyncClient(
            timeout=httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            trust_env=False,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        for model in self.config.models:
            self._spawn(self._start(model))
        try:
            yield
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.sleep_mode_client.aclose()
            await self.upstream.aclose()

    # --- requests ---------------------------------------------------------------------------

    async def acquire(self, name: str) -> None:
        """Return once the model is awake and the request counted in flight; raise Unavailable
        when it failed or `wake_timeout_s` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.wake_timeout_s
        async with self.changed:
            self.policy.arrive(name)
            try:
                while True:
                    decision = self.policy.admit(name)
                    self._carry_out(decision)
                    if decision.verdict is Verdict.READY:
                        return
                    if decision.verdict is Verdict.FAILED:
                        raise Unavailable(name, decision.reason)
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        waited = self.config.wake_timeout_s
                        why = self.policy.why_waiting(name)
                        raise Unavailable(name, f"waited {waited:g} s (wake_timeout_s): {why}")
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), remaining)
            except BaseException:
                self.policy.leave(name)
                self.changed.notify_all()  # one model fewer asking for a slot
                raise

    async def release(self, name: str) -> None:
        async with self.changed:
            self.policy.finish(name)
            self._put_to_sleep(self.policy.trim())
            self.changed.notify_all()

    # --- what the policy decided ------------------------------------------------------------

    def _carry_out(self, decision: Decision) -> None:
        if decision.wake:
            self._spawn(self._wake(decision.wake))
        if decision.sleep:
            self._put_to_sleep([decision.sleep])

    def _put_to_sleep(self, names: list[str]) -> None:
        for name in names:
            self._spawn(self._sleep(name))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _start(self, model: ModelConfig) -> None:
        client = self.sleep_mode_client
        while True:
            if await sleep_mode.healthy(client, model.url, HEALTH_TIMEOUT_S):
                try:
                    sleeping = await sleep_mode.is_sleeping(client, model.url)
                    break
                except sleep_mode.SleepModeError as error:
                    # Most likely a server started without VLLM_SERVER_DEV_MODE=1 (no /is_sleeping).
                    reason = f"it is healthy, but {error}"
                    if self.policy.models[model.key].error != reason:
                        log.warning("%s: %s", model.key, reason)
                    self.policy.not_ready(model.key, reason)
            await asyncio.sleep(self.config.health_poll_s)
        log.info("%s is up and %s", model.key, "asleep" if sleeping else "awake")
        async with self.changed:
            self.policy.seen(model.key, sleeping)
            self._put_to_sleep(self.policy.trim())
            self.changed.notify_all()

    async def _wake(self, name: str) -> None:
        model, started = self.models[name], time.monotonic()
        try:
            wake = sleep_mode.wake_up(self.sleep_mode_client, model.url)
            await asyncio.wait_for(wake, self.config.wake_timeout_s)
        except Exception as error:
            reason = describe(error, self.config.wake_timeout_s)
            log.warning("%s did not wake: %s", name, reason)
            self.metrics.wake_failures.labels(model=name).inc()
            async with self.changed:
                self.policy.wake_failed(name, f"it did not wake: {reason}")
                self.changed.notify_all()
            return
        self.metrics.wakes.labels(model=name).inc()
        self.metrics.wake_seconds.labels(model=name).observe(time.monotonic() - started)
        async with self.changed:
            self.policy.woke(name)
            self.changed.notify_all()

    async def _sleep(self, name: str) -> None:
        model = self.models[name]
        try:
            work = sleep_mode.sleep(self.sleep_mode_client, model.url, self.config.sleep_level)
            await asyncio.wait_for(work, self.config.wake_timeout_s)
        except Exception as error:
            reason = describe(error, self.config.wake_timeout_s)
            log.warning("%s did not go to sleep: %s", name, reason)
            async with self.changed:
                self.policy.sleep_failed(name, f"it did not go to sleep: {reason}")
                self.changed.notify_all()
            return
        self.metrics.sleeps.labels(model=name).inc()
        async with self.changed:
            self.policy.slept(name)
            self.changed.notify_all()

    def report(self) -> dict[str, Any]:
        """Each model's residency, as GET /residency answers."""
        now_wall, now = time.time(), self.policy.clock()
        models = {}
        for m in self.policy.models.values():
            retry = m.failed_until - now if m.state == FAILED else None
            models[m.name] = {
                "gpu": m.gpu,
                "state": m.state,
                "in_flight": m.in_flight,
                "waiting": m.waiting,
                "last_used": None if m.last_used is None else now_wall - (now - m.last_used),
                "error": m.error or None,
                "retry_in_s": None if retry is None else max(retry, 0.0),
            }
        return {"awake_per_gpu": self.config.awake_per_gpu, "models": models}


def describe(error: BaseException, timeout_s: float) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return f"no answer within {timeout_s:g} s (wake_timeout_s)"
    return str(error) or type(error).__name__
