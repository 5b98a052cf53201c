"""Residency in containers (issue 19), on the CPU machine: the compose file render.py writes for
tests/live/manifest-residency.yaml (six models on two GPUs, two awake per GPU), with each model's
vLLM server swapped for a fake one (tests/unit/residency/fakes.py: sleep mode needs CUDA) that
keeps an account of when it was awake. The residency service, its config, the start-up waves and
their healthchecks, the controller and the web UI are the real ones, in the FastChat image the
live stack built; this stack is a project of its own beside it, and builds nothing.
"""

from __future__ import annotations

import json
import queue
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from python_on_whales import DockerClient

from arenastack import cli
from tests.conftest import REPO
from tests.live.arena_api import OUTCOMES, api_battle, connect, repo_python
from tests.live.conftest import LIVE, RUN, Report, artifact
from tests.live.keep_alive import Connection, idle_then_ask
from tests.ports import free_port

pytestmark = pytest.mark.live

SOURCE = LIVE / "manifest-residency.yaml"
FAKES = {f"fake-{i}": "0" if i <= 3 else "1" for i in range(1, 7)}
DISPLAY = {f"Fake {i}" for i in range(1, 7)}
AWAKE_PER_GPU = 2
# Bounded bursts: this many streamed requests to each of the six at once, this many times.
BURST_PER_MODEL, ROUNDS = 4, 3
BATTLES = 6
FAKE_WAKE_DELAY_S = 0.3
UP_TIMEOUT_S = 300


@dataclass
class ResidencyStack:
    docker: DockerClient
    manifest: Path
    url: str  # the residency service's published OpenAI API
    webui: str

    def residences(self) -> dict[str, Any]:
        states: dict[str, Any] = get_json(f"{self.url}/residency")["models"]
        return states

    def account(self, fake: str) -> dict[str, Any]:
        """The fake's own account, asked inside its container (it publishes no port)."""
        script = "import urllib.request as r; print(r.urlopen('http://127.0.0.1:8000/account').read().decode())"
        output = self.docker.compose.execute(fake, ["python3", "-c", script], tty=False)
        assert isinstance(output, str)
        account: dict[str, Any] = json.loads(output)
        return account

    def fault(self, fake: str, wake: str) -> None:
        script = (
            "import sys, urllib.request as r; "
            "r.urlopen(r.Request('http://127.0.0.1:8000/fault?wake=' + sys.argv[1], method='POST'))"
        )
        self.docker.compose.execute(fake, ["python3", "-c", script, wake], tty=False)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def fake_servers(document: dict[str, Any], image: str) -> dict[str, Any]:
    """The rendered compose document with each model server swapped for a fake one, fetch-models
    for a no-op, and nothing built (the images exist)."""
    tests = REPO / "tests"
    services = document["services"]
    for service in services.values():
        service.pop("build", None)
    services["fetch-models"] = {"image": image, "pull_policy": "never", "command": ["true"]}
    for name, gpu in FAKES.items():
        server = services[name]
        served = server["command"][server["command"].index("--served-model-name") + 1]
        server.update(
            image=image,
            pull_policy="never",
            command=["python3", "-m", "tests.unit.residency.fakes", "--name", served,
                     "--gpu", gpu, "--wake-delay-s", str(FAKE_WAKE_DELAY_S)],
            volumes=[{"type": "bind", "source": str(tests), "target": "/opt/arenastack/tests",
                      "read_only": True}],
        )  # fmt: skip
        server.pop("deploy")  # no GPU here
    document["volumes"] = {"arena-logs": {}}
    return document


@pytest.fixture(scope="module")
def residency_stack(live_manifest: Path) -> Iterator[ResidencyStack]:
    """Depends on the live manifest for its images (built there), not on the running stack."""
    project = f"{RUN.project}-residency"
    data = yaml.safe_load(SOURCE.read_text())
    data["project"] = project
    data["residency"]["port"] = free_port()
    data["webui"]["port"] = free_port(taken=[data["residency"]["port"]])
    manifest = LIVE / f".run-{project}.yaml"
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    compose_file = LIVE / f".run-{project}.compose.yml"
    assert cli.main([str(manifest), "-o", str(compose_file), "--host-memory", "64"]) == 0
    document = yaml.safe_load(compose_file.read_text())
    image = document["services"]["controller"]["image"]
    compose_file.write_text(yaml.safe_dump(fake_servers(document, image), sort_keys=False))
    docker = DockerClient(compose_files=[compose_file], compose_project_name=project)
    try:
        docker.compose.up(detach=True, wait=True, wait_timeout=UP_TIMEOUT_S)
        yield ResidencyStack(
            docker,
            manifest,
            f"http://127.0.0.1:{data['residency']['port']}",
            f"http://127.0.0.1:{data['webui']['port']}",
        )
    finally:
        with (artifact("residency-service.log")).open("w") as log:
            log.write(str(docker.compose.logs(services=["residency"])))
        docker.compose.down(volumes=True, remove_orphans=True)


def most_awake_at_once(accounts: list[dict[str, Any]]) -> dict[str, int]:
    """Per GPU, the most fakes awake at the same moment, from their wall-clock intervals."""
    now = time.time()
    events: dict[str, list[tuple[float, int]]] = {}
    for account in accounts:
        for began, ended in account["awake_intervals"]:
            gpu_events = events.setdefault(account["gpu"], [])
            gpu_events += [(began, 1), (now if ended is None else ended, -1)]
    most = {}
    for gpu, gpu_events in events.items():
        awake = peak = 0
        for _, change in sorted(gpu_events):  # an end sorts before a start at the same instant
            awake += change
            peak = max(peak, awake)
        most[gpu] = peak
    return most


def stream(url: str, model: str, words: str = "") -> str:
    """One streamed chat completion; the text it streamed, or an error's body."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    text, done = "", False
    with urllib.request.urlopen(request, timeout=120) as answer:
        for line in answer:
            if line.strip() == b"data: [DONE]":
                done = True
            elif line.startswith(b"data: "):
                text += json.loads(line[6:])["choices"][0]["delta"]["content"]
    assert done, f"the stream of {model} ended without [DONE]: {text!r}"
    return text


def test_start_up_comes_in_waves_and_leaves_two_awake_per_gpu(
    residency_stack: ResidencyStack,
) -> None:
    """Per GPU, fake-1 (fake-4) is the first wave: up, put to sleep, and only then do the last
    wave's two start; they stay awake."""
    states = {name: r["state"] for name, r in residency_stack.residences().items()}
    assert states == {
        "fake-1": "asleep",
        "fake-2": "awake",
        "fake-3": "awake",
        "fake-4": "asleep",
        "fake-5": "awake",
        "fake-6": "awake",
    }
    # `render.py status` shows the same, asked by the manifest alone.
    result = repo_python(
        "render.py", "status", str(residency_stack.manifest), "--json", "--host-memory", "64"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shown = {m["service"]: m["residency"] for m in json.loads(result.stdout)["models"]}
    assert shown == states
    accounts = {name: residency_stack.account(name) for name in FAKES}
    for first, later in (("fake-1", ("fake-2", "fake-3")), ("fake-4", ("fake-5", "fake-6"))):
        slept_at = accounts[first]["awake_intervals"][0][1]
        assert slept_at is not None and accounts[first]["sleeps"] == 1
        for name in later:
            assert accounts[name]["awake_intervals"][0][0] > slept_at, (name, accounts)


def test_the_service_keeps_an_idle_connection_open_longer_than_clients_pool_it(
    residency_stack: ResidencyStack,
) -> None:
    """The web UI and the gateway keep connections to it in pools (--keep-alive)."""
    connection = Connection(residency_stack.url, "/health")
    assert connection.first == 200
    assert idle_then_ask({"residency": connection}) == {"residency": "200"}


def test_bursts_to_all_six_are_answered_with_two_awake_per_gpu_at_most(
    residency_stack: ResidencyStack,
) -> None:
    url = residency_stack.url
    expected = {name: f"reply from {name}" for name in FAKES}
    with ThreadPoolExecutor(max_workers=len(FAKES) * BURST_PER_MODEL) as pool:
        for _ in range(ROUNDS):
            asked = [name for name in FAKES for _ in range(BURST_PER_MODEL)]
            replies = list(pool.map(lambda name: (name, stream(url, name)), asked))
            assert all(text == expected[name] for name, text in replies), replies
    accounts = [residency_stack.account(name) for name in FAKES]
    assert most_awake_at_once(accounts) == {"0": AWAKE_PER_GPU, "1": AWAKE_PER_GPU}
    assert [a["violations"] for a in accounts] == [[]] * len(FAKES), "slept with requests in flight"
    assert sum(a["served"] for a in accounts) >= ROUNDS * len(FAKES) * BURST_PER_MODEL
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    wakes = sum(a["wakes"] for a in accounts)
    assert wakes >= ROUNDS, "every round woke the GPUs' sleeping models"
    assert "arenastack_residency_wakes_total" in metrics


def test_arena_battles_through_the_ui_api_keep_working(residency_stack: ResidencyStack) -> None:
    clients: queue.Queue[Any] = queue.Queue()
    clients.put(connect(residency_stack.webui))
    fought = [api_battle(clients, index, DISPLAY) for index in range(BATTLES)]
    assert [outcome for _, _, outcome, _ in fought] == [
        OUTCOMES[i % len(OUTCOMES)] for i in range(BATTLES)
    ]
    assert all(a != b and {a, b} <= DISPLAY for a, b, _, _ in fought)
    accounts = [residency_stack.account(name) for name in FAKES]
    assert most_awake_at_once(accounts) == {"0": AWAKE_PER_GPU, "1": AWAKE_PER_GPU}


def test_a_model_that_cannot_wake_fails_clearly_while_the_others_answer(
    residency_stack: ResidencyStack, report: Report
) -> None:
    """Last in this file: fake-3 stays broken (its back-off outlasts the test)."""
    url = residency_stack.url
    residency_stack.fault("fake-3", "error")
    # Its GPU's other two take the slots until fake-3 is the one asleep.
    for _ in range(6):
        if residency_stack.residences()["fake-3"]["state"] == "asleep":
            break
        for name in ("fake-1", "fake-2"):
            stream(url, name)
    assert residency_stack.residences()["fake-3"]["state"] == "asleep"
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        others = [pool.submit(stream, url, name) for name in FAKES if name != "fake-3"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            stream(url, "fake-3")
        answers = [future.result() for future in others]
    waited = time.monotonic() - began
    error = json.loads(refused.value.read())["error"]
    assert refused.value.code == 503
    assert error["code"] == "model_unavailable"
    assert "'fake-3'" in error["message"] and "did not wake" in error["message"], error
    assert answers == [f"reply from {name}" for name in FAKES if name != "fake-3"]
    report.figures["residency_failed_wake_answered_s"] = round(waited, 2)
    state = residency_stack.residences()["fake-3"]
    assert state["state"] == "failed" and "did not wake" in state["error"]
    # Later requests are refused at once, naming it, while the others still answer.
    with pytest.raises(urllib.error.HTTPError) as again:
        stream(url, "fake-3")
    assert "'fake-3'" in json.loads(again.value.read())["error"]["message"]
    assert stream(url, "fake-1") == "reply from fake-1"
