"""The gateway on the running stack: one OpenAI endpoint with a key over the three tiny models,
used the way an evaluation script would (the openai package, plain HTTP for the refusals).

The fault test kills one model's engine, checks that requests to it fail fast while the others
answer every request of a burst, that the gateway's /health and `render.py status` name it (and
only it) as unreachable, and waits until that model is healthy again before it returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from openai import APIError, AuthenticationError, OpenAI

from arenastack.core.services import GATEWAY_PORT, VLLM_PORT
from arenastack.gateway import litellm
from tests.conftest import REPO
from tests.live.conftest import LIVE, Stack
from tests.live.test_stack import kill_engine, wait_until_restarted_and_healthy

pytestmark = pytest.mark.live

# Local models are served under their service name; the display names are aliases.
DISPLAY = {"tiny-a": "Tiny A", "tiny-b": "Tiny B", "tiny-q": "Tiny Qwen"}
USER_KEY = "sk-live-tester-3f9c2a7d1b"  # tests/live/gateway-keys.yaml
# A model that is down must fail within this (the manifest's request_timeout is 30 s; a model
# that is down refuses connections, so the real figure is far lower: see the report).
FAIL_WITHIN_S = 30
BURST = 5  # requests to each healthy model while one is down
PROMPT = "Hello! How are you today?"


def master_key() -> str:
    return os.environ[litellm.MASTER_KEY_ENV]


def base_url(stack: Stack) -> str:
    return stack.url("gateway", GATEWAY_PORT) + "/v1"


def client(stack: Stack, key: str | None = None, timeout: float = 120) -> OpenAI:
    # No retries: every failure must show, and how long it took.
    return OpenAI(
        base_url=base_url(stack), api_key=key or master_key(), timeout=timeout, max_retries=0
    )


def chat(openai: OpenAI, model: str, stream: bool = False) -> str:
    if stream:
        chunks = openai.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=16,
            temperature=0,
            stream=True,
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = openai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=16, temperature=0
    )
    return reply.choices[0].message.content or ""


def get(url: str, key: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_the_gateway_started_after_every_model_was_up(stack: Stack) -> None:
    started = stack.started("gateway")
    for service in DISPLAY:
        assert started > stack.logged(service, "Application startup complete"), service
    serving = stack.logged("gateway", "Application startup complete")
    stack.report.figures["gateway_start_to_serving_s"] = round(serving - started, 1)


def test_the_key_lists_every_model_by_both_names(stack: Stack) -> None:
    listed = {model.id for model in client(stack).models.list()}
    assert listed == set(DISPLAY) | set(DISPLAY.values())


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("service", list(DISPLAY))
def test_each_model_answers_through_the_gateway_by_both_names(
    stack: Stack, service: str, stream: bool
) -> None:
    """Greedy decoding of the tiny random models is deterministic and differs between them, so
    the same text as the model's own server proves the gateway reached that model."""
    direct = OpenAI(base_url=stack.url(service, VLLM_PORT) + "/v1", api_key="none", timeout=120)
    expected = chat(direct, service, stream=stream)
    assert expected.strip()
    for name in (service, DISPLAY[service]):
        assert chat(client(stack), name, stream=stream) == expected, name


def test_without_the_key_401(stack: Stack) -> None:
    url = base_url(stack)
    for key in (None, "sk-wrong", master_key() + "x"):
        status, body = get(f"{url}/models", key)
        assert status == 401, (key, body)
    with pytest.raises(AuthenticationError) as refused:
        chat(client(stack, key="sk-wrong"), "tiny-a")
    assert refused.value.status_code == 401
    # The healthcheck's route needs no key.
    status, _ = get(stack.url("gateway", GATEWAY_PORT) + "/health/liveliness")
    assert status == 200


def test_a_user_key_from_the_keys_file_is_accepted(stack: Stack) -> None:
    assert chat(client(stack, key=USER_KEY), "Tiny Qwen").strip()


def test_no_key_is_written_into_generated_files(stack: Stack) -> None:
    for path in [stack.compose_file, *LIVE.glob(f".run-{stack.project}*")]:
        assert master_key() not in path.read_text(encoding="utf-8"), path
    environment = stack.inspect("gateway")["Config"]["Env"]
    assert f"{litellm.MASTER_KEY_ENV}={master_key()}" in environment, "passed by name"


def health(stack: Stack) -> dict[str, Any]:
    status, body = get(stack.url("gateway", GATEWAY_PORT) + "/health", master_key())
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def bases(endpoints: list[dict[str, Any]]) -> set[str]:
    return {endpoint["api_base"] for endpoint in endpoints}


def status_gateway(stack: Stack) -> dict[str, Any]:
    """The gateway part of `render.py status --json`, run as an operator would: without the key
    in the shell (status asks from inside the gateway container, where the key is)."""
    shell = {name: value for name, value in os.environ.items() if name != litellm.MASTER_KEY_ENV}
    command = [sys.executable, str(REPO / "render.py"), "status", str(stack.manifest)]
    result = subprocess.run(
        [*command, "-o", str(stack.compose_file), "--json"],
        capture_output=True,
        text=True,
        env=shell,
        cwd=REPO,
        timeout=300,  # a hang guard only: status bounds its own requests
    )
    assert result.returncode == 0, result.stderr
    view: dict[str, Any] = json.loads(result.stdout)["gateway"]
    assert view["problem"] is None, view
    return view


def reach(view: dict[str, Any]) -> dict[str, str]:
    return {service: model["health"] for service, model in view["models"].items()}


def test_a_killed_model_fails_fast_while_the_others_answer_every_request(stack: Stack) -> None:
    everyone = {f"http://{service}:{VLLM_PORT}/v1" for service in DISPLAY}
    assert bases(health(stack)["healthy_endpoints"]) == everyone
    assert reach(status_gateway(stack)) == dict.fromkeys(DISPLAY, "healthy")

    restarts = stack.inspect("tiny-b")["RestartCount"]
    kill_engine(stack, "tiny-b")

    # The burst to the others runs meanwhile; every request of it must be answered.
    answers: dict[str, list[str]] = {"tiny-a": [], "tiny-q": []}
    failures: list[str] = []

    def burst() -> None:
        for _ in range(BURST):
            for service in answers:
                try:
                    answers[service].append(chat(client(stack), DISPLAY[service]))
                except Exception as error:  # any failure of a healthy model counts
                    failures.append(f"{service}: {error}")

    others = threading.Thread(target=burst)
    others.start()
    try:
        # Requests to tiny-b until one has failed; each must end within the bound. (Right
        # after the kill its server may still be shutting down.)
        failed_after: list[float] = []
        messages: list[str] = []
        deadline = time.monotonic() + 120
        while not failed_after and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                chat(client(stack, timeout=FAIL_WITHIN_S + 30), "Tiny B")
            except APIError as error:
                failed_after.append(time.monotonic() - started)
                messages.append(str(error))
            took = time.monotonic() - started
            assert took < FAIL_WITHIN_S, f"a request to the killed model took {took:.1f} s"
            time.sleep(0.5)
        assert failed_after, "no request to the killed model failed within 2 minutes"
        assert "Tiny B" in messages[0] or "tiny-b" in messages[0], messages[0]

        # While it is down (it needs tens of seconds to load again), the gateway's per-model
        # health names it, and only it.
        down = health(stack)
        assert bases(down["unhealthy_endpoints"]) == {"http://tiny-b:8000/v1"}
        assert bases(down["healthy_endpoints"]) == everyone - {"http://tiny-b:8000/v1"}
        # And so does `status`, with LiteLLM's reason on one line.
        seen = status_gateway(stack)
        assert reach(seen) == {"tiny-a": "healthy", "tiny-b": "unhealthy", "tiny-q": "healthy"}
        reason = seen["models"]["tiny-b"]["error"]
        assert reason and "\n" not in reason and "stack trace" not in reason, reason
    finally:
        others.join()
        recovered_s = wait_until_restarted_and_healthy(stack, "tiny-b", restarts)

    assert not failures, failures
    assert {service: len(texts) for service, texts in answers.items()} == {
        "tiny-a": BURST, "tiny-q": BURST
    }  # fmt: skip
    assert all(text.strip() for texts in answers.values() for text in texts)
    # Healthy again behind the gateway too (its connection pool may hold the old address for a
    # few seconds: wait for the first answer, and say how long it took).
    back_at = time.monotonic()
    while True:
        try:
            assert chat(client(stack), "Tiny B").strip()
            break
        except APIError:
            assert time.monotonic() - back_at < 60, "the gateway did not reach tiny-b again"
            time.sleep(2)
    stack.report.figures["gateway_reaches_tiny_b_after_healthy_s"] = round(
        time.monotonic() - back_at, 1
    )
    stack.report.figures["gateway_killed_model_failed_after_s"] = round(failed_after[0], 2)
    stack.report.figures["gateway_killed_model_error"] = messages[0][:300]
    stack.report.figures["gateway_tiny_b_crash_to_healthy_s"] = round(recovered_s, 1)
    stack.report.figures["status_gateway_asked_in_s"] = seen["took_s"]
    stack.report.figures["status_gateway_tiny_b_error"] = reason
