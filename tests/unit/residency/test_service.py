"""The residency service for real: create_app under uvicorn in a thread, fake vLLM servers
(fakes.py) in threads of their own, and httpx over sockets. Nothing of the service is mocked.

Every wait here is on state (the service's /residency, the fakes' accounts) with a generous
deadline; nothing asserts how long a thing took, except that a model that cannot wake is
refused within its bound, wake_timeout_s plus a wide margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from arenastack.residency.config import parse
from arenastack.residency.control import Residency
from arenastack.residency.service import create_app
from tests.unit.residency.fakes import (
    ASLEEP_MEMORY,
    AWAKE_MEMORY,
    FakeVllm,
    Monitor,
    Served,
    wait_for,
)

SETTLE_S = 60
# Generous, for a loaded 2-core machine: a wait this long means something is stuck.
PATIENT_TIMEOUT_S = 60.0


@dataclass
class Stack:
    url: str
    fakes: dict[str, FakeVllm]
    residency: Residency

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", trust_env=False, timeout=30)

    def residences(self) -> dict[str, Any]:
        models: dict[str, Any] = self.get("/residency").json()["models"]
        return models

    def settle(self) -> dict[str, Any]:
        """/residency once no model is starting, waking or sleeping."""
        moving = {"starting", "waking", "sleeping"}
        wait_for(
            lambda: not moving & {m["state"] for m in self.residences().values()},
            SETTLE_S,
            "the models did not settle",
        )
        return self.residences()

    def metric(self, name: str) -> dict[str, float]:
        """model → value of one counter of /metrics."""
        found = {}
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name:
                    found[sample.labels["model"]] = sample.value
        return found


@contextlib.contextmanager
def running(fakes: list[FakeVllm], **settings: Any) -> Iterator[Stack]:
    with contextlib.ExitStack() as stack:
        served = {f.name: stack.enter_context(Served(f.app())) for f in fakes}
        for fake in fakes:  # runs after the service has stopped, before the fakes stop
            stack.callback(fake.release_hangs)
        models = {
            f.name: {"url": served[f.name].url, "gpu": f.gpu, "names": [f.name, alias(f)]}
            for f in fakes
        }
        config = parse({"health_poll_s": 0.05, **settings, "models": models})
        app = create_app(config)
        service = stack.enter_context(Served(app))
        yield Stack(service.url, {f.name: f for f in fakes}, app.state.residency)


def alias(fake: FakeVllm) -> str:
    return f"Display {fake.name}"


@dataclass(frozen=True)
class Ask:
    model: str  # the name the request uses
    stream: bool = False
    chat: bool = True


@dataclass
class Answer:
    status: int
    text: str  # the reply's content, streamed chunks joined
    body: str
    seconds: float


async def ask(client: httpx.AsyncClient, url: str, question: Ask) -> Answer:
    path = "/v1/chat/completions" if question.chat else "/v1/completions"
    payload: dict[str, Any] = {"model": question.model, "stream": question.stream}
    if question.chat:
        payload["messages"] = [{"role": "user", "content": "hello"}]
    else:
        payload["prompt"] = "hello"
    started = time.monotonic()
    async with client.stream("POST", f"{url}{path}", json=payload) as response:
        chunks = [chunk async for chunk in response.aiter_text()]
    body = "".join(chunks)
    seconds = time.monotonic() - started
    if response.status_code != 200:
        return Answer(response.status_code, "", body, seconds)
    if not question.stream:
        choice = json.loads(body)["choices"][0]
        text = choice["message"]["content"] if question.chat else choice["text"]
        return Answer(200, text, body, seconds)
    events = [e.removeprefix("data: ") for e in body.split("\n\n") if e]
    assert events[-1] == "[DONE]", f"the stream did not end with [DONE]: {body!r}"
    pieces = [json.loads(e)["choices"][0] for e in events[:-1]]
    text = "".join(p["delta"]["content"] if question.chat else p["text"] for p in pieces)
    return Answer(200, text, body, seconds)


def ask_all(url: str, questions: list[Ask]) -> list[Answer]:
    async def burst() -> list[Answer]:
        limits = httpx.Limits(max_connections=len(questions))
        async with httpx.AsyncClient(
            trust_env=False, timeout=PATIENT_TIMEOUT_S + 30, limits=limits
        ) as client:
            return list(await asyncio.gather(*(ask(client, url, q) for q in questions)))

    # In a thread of its own: in the default run the live tests come first, and Playwright's sync
    # API (their session-wide browser) keeps an event loop running in the main thread, where
    # asyncio.run refuses to start another.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, burst()).result()


def assert_clean(stack: Stack, monitor: Monitor, awake_per_gpu: int) -> None:
    assert all(n <= awake_per_gpu for n in monitor.most_awake.values()), monitor.most_awake
    assert {name: f.violations for name, f in stack.fakes.items() if f.violations} == {}


# --- (1) bursts over six models on two GPUs ---------------------------------------------------


def test_bursts_over_six_models_on_two_gpus_keep_two_awake_per_gpu() -> None:
    monitor = Monitor()
    fakes = [
        FakeVllm(f"m{gpu}{i}", str(gpu), monitor, awake=i < 2) for gpu in (0, 1) for i in range(3)
    ]
    chooser = random.Random(19)
    with running(fakes, awake_per_gpu=2, wake_timeout_s=PATIENT_TIMEOUT_S) as stack:
        stack.settle()
        for _ in range(4):
            questions = []
            for i in range(30):
                fake = fakes[i % len(fakes)]
                name = chooser.choice([fake.name, alias(fake)])
                questions.append(Ask(name, stream=chooser.random() < 0.5, chat=i % 4 != 0))
            chooser.shuffle(questions)
            answers = ask_all(stack.url, questions)
            for question, answer in zip(questions, answers, strict=True):
                served = question.model.removeprefix("Display ")
                assert (answer.status, answer.text) == (200, f"reply from {served}"), answer.body

        assert_clean(stack, monitor, awake_per_gpu=2)
        assert sum(f.wakes for f in fakes) > 0, "the bursts never made the service wake a model"
        assert stack.metric("arenastack_residency_wakes_total") == {f.name: f.wakes for f in fakes}
        assert stack.metric("arenastack_residency_sleeps_total") == {
            f.name: f.sleeps for f in fakes
        }
        assert all(level == 1 for f in fakes for level in f.sleep_levels)
        for gpu in ("0", "1"):
            memory = sum(f.memory for f in fakes if f.gpu == gpu)
            assert memory <= 2 * AWAKE_MEMORY + ASLEEP_MEMORY
        assert all(m["in_flight"] == 0 for m in stack.settle().values())


def test_one_battle_on_one_gpu_with_one_awake_answers_both_sides_in_turn() -> None:
    """The pair case of the service's docstring: the second side waits for the first."""
    monitor = Monitor()
    fakes = [FakeVllm("left", "0", monitor), FakeVllm("right", "0", monitor, awake=False)]
    with running(fakes, awake_per_gpu=1, wake_timeout_s=PATIENT_TIMEOUT_S) as stack:
        stack.settle()
        for _ in range(3):
            answers = ask_all(stack.url, [Ask("left", stream=True), Ask("right", stream=True)])
            assert [(a.status, a.text) for a in answers] == [
                (200, "reply from left"),
                (200, "reply from right"),
            ]
        assert_clean(stack, monitor, awake_per_gpu=1)


def test_a_stream_is_passed_through_chunk_by_chunk_and_counted_in_flight_to_its_end() -> None:
    """The fake holds its stream after the first chunk until the test has read that chunk
    through the service: a service that buffered the answer would never hand it over."""
    gate = threading.Event()
    fake = FakeVllm("streamer", "0", Monitor(), stream_gate=gate)
    with running([fake], awake_per_gpu=1) as stack:
        stack.settle()
        payload = {"model": "streamer", "stream": True, "messages": []}
        with httpx.stream(
            "POST", f"{stack.url}/v1/chat/completions", json=payload, trust_env=False, timeout=60
        ) as response:
            chunks = response.iter_text()
            first = next(chunks)
            assert first.startswith("data: ") and '"reply"' in first and "[DONE]" not in first
            assert stack.residences()["streamer"]["in_flight"] == 1
            gate.set()
            rest = "".join(chunks)
        assert rest.endswith("data: [DONE]\n\n")
        wait_for(lambda: stack.residences()["streamer"]["in_flight"] == 0, SETTLE_S, "in flight")


# --- (2) a model that cannot wake ---------------------------------------------------------


@pytest.mark.parametrize("how", ["error", "stays_asleep", "hang"])
def test_a_model_that_cannot_wake_is_refused_in_time_and_the_others_go_on(how: str) -> None:
    monitor = Monitor()
    bad = FakeVllm("bad", "0", monitor, awake=False, fail_to_wake=how)
    later = FakeVllm("later", "0", monitor, awake=False)
    one = FakeVllm("one", "1", monitor)
    other = FakeVllm("other", "1", monitor, awake=False)
    wake_timeout_s = 5.0
    settings = {"awake_per_gpu": 1, "wake_timeout_s": wake_timeout_s, "failed_backoff_s": 600}
    with running([bad, later, one, other], **settings) as stack:
        stack.settle()
        others = [Ask(n, stream=s) for n in ("one", "other") for s in (False, True)]
        answers = ask_all(stack.url, [Ask("bad", stream=True), *others])

        refused = answers[0]
        assert refused.status == 503, refused.body
        error = json.loads(refused.body)["error"]
        assert "'bad'" in error["message"]
        assert error["code"] == "model_unavailable"
        assert refused.seconds < wake_timeout_s + 10
        assert [(a.status, a.text) for a in answers[1:]] == [
            (200, f"reply from {q.model}") for q in others
        ]

        # The slot the failed model would have used is free: its GPU wakes another model.
        wait_for(lambda: stack.residences()["bad"]["state"] == "failed", SETTLE_S, "not failed")
        assert [(a.status, a.text) for a in ask_all(stack.url, [Ask("later")])] == [
            (200, "reply from later")
        ]
        # During its back-off the failed model is refused at once, with the reason.
        again = ask_all(stack.url, [Ask("bad")])[0]
        assert again.status == 503
        assert "next try in" in json.loads(again.body)["error"]["message"]
        assert stack.residences()["bad"]["error"]
        assert stack.metric("arenastack_residency_wake_failures_total")["bad"] >= 1
        assert_clean(stack, monitor, awake_per_gpu=1)


# --- (3) one wake for many requests -----------------------------------------------------------


def test_requests_for_a_waking_model_share_one_wake() -> None:
    monitor = Monitor()
    sleeper = FakeVllm("sleeper", "0", monitor, awake=False, wake_delay_s=0.5)
    with running([sleeper], awake_per_gpu=1, wake_timeout_s=PATIENT_TIMEOUT_S) as stack:
        stack.settle()
        questions = [Ask("sleeper", stream=i % 2 == 0) for i in range(12)]
        answers = ask_all(stack.url, questions)
        assert {(a.status, a.text) for a in answers} == {(200, "reply from sleeper")}
        assert sleeper.wakes == 1
        assert stack.metric("arenastack_residency_wakes_total") == {"sleeper": 1}
        assert_clean(stack, monitor, awake_per_gpu=1)


# --- (4) start-up ---------------------------------------------------------------------------


def test_start_up_puts_the_extra_awake_models_of_a_gpu_to_sleep() -> None:
    monitor = Monitor()
    fakes = [FakeVllm(f"s{i}", "0", monitor) for i in range(3)]
    with running(fakes, awake_per_gpu=2, sleep_level=2) as stack:
        states = stack.settle()
        assert sorted(m["state"] for m in states.values()) == ["asleep", "awake", "awake"]
        assert sorted(f.awake for f in fakes) == [False, True, True]
        assert [f.sleep_levels for f in fakes if not f.awake] == [[2]]
        assert sum(stack.metric("arenastack_residency_sleeps_total").values()) == 1


def test_a_model_not_yet_healthy_is_waited_for_then_refused_by_name() -> None:
    monitor = Monitor()
    late = FakeVllm("late", "0", monitor, healthy=False)
    with running([late], awake_per_gpu=1, wake_timeout_s=1) as stack:
        assert stack.get("/health").json()["models"] == {"late": "starting"}
        refused = ask_all(stack.url, [Ask("late")])[0]
        assert refused.status == 503
        message = json.loads(refused.body)["error"]["message"]
        assert "'late'" in message and "/health" in message

        late.healthy = True
        assert stack.settle()["late"]["state"] == "awake"
        assert ask_all(stack.url, [Ask("late")])[0].text == "reply from late"


def test_a_server_without_the_sleep_mode_endpoints_is_refused_with_the_reason() -> None:
    monitor = Monitor()
    plain = FakeVllm("plain", "0", monitor, dev_mode=False)
    with running([plain], awake_per_gpu=1, wake_timeout_s=1) as stack:
        wait_for(lambda: stack.residences()["plain"]["error"], SETTLE_S, "no start-up error")
        refused = ask_all(stack.url, [Ask("plain")])[0]
        assert refused.status == 503
        message = json.loads(refused.body)["error"]["message"]
        assert "'plain'" in message and "GET /is_sleeping answered 404" in message
        assert stack.residences()["plain"]["state"] == "starting"


# --- the routes -----------------------------------------------------------------------------


def test_routes_models_health_residency_and_errors() -> None:
    monitor = Monitor()
    fakes = [FakeVllm("a", "0", monitor), FakeVllm("b", "1", monitor, awake=False)]
    with running(fakes, awake_per_gpu=1) as stack:
        stack.settle()
        listed = stack.get("/v1/models").json()
        assert listed["object"] == "list"
        assert {m["id"] for m in listed["data"]} == {"a", "b", "Display a", "Display b"}

        health = stack.get("/health")
        assert health.status_code == 200
        assert health.json()["models"] == {"a": "awake", "b": "asleep"}
        report = stack.residences()
        assert report["a"]["gpu"] == "0" and report["a"]["in_flight"] == 0

        unknown = httpx.post(
            f"{stack.url}/v1/chat/completions", json={"model": "zzz"}, trust_env=False
        )
        assert unknown.status_code == 404 and "'zzz'" in unknown.json()["error"]["message"]
        not_json = httpx.post(f"{stack.url}/v1/completions", content=b"{", trust_env=False)
        assert not_json.status_code == 400

        # An error of the server is the caller's, status and body as they were.
        invalid = httpx.post(
            f"{stack.url}/v1/completions",
            json={"model": "Display b", "prompt": "x", "max_tokens": -1},
            trust_env=False,
            timeout=PATIENT_TIMEOUT_S,
        )
        assert invalid.status_code == 400
        assert invalid.json()["message"] == "max_tokens must be at least 1, got -1."
        assert stack.residences()["b"]["last_used"] is not None
