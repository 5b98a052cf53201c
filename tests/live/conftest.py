"""The live stack: rendered from tests/live/manifest.yaml, started with the real Docker Compose,
real vLLM (CPU backend) and real FastChat, torn down at the end.

pytest-docker's session fixtures start and stop it (`docker_compose_file`,
`docker_compose_project_name`, `docker_setup`, `docker_cleanup`); python-on-whales does everything
else. Each run has a project name and host ports of its own, so two runs on one host never touch
each other's containers, volumes or ports. Its images are built when missing or stale
(tests/images.py).

Where no Docker engine, Compose plugin or base image is at hand, the live tests skip, and say so in
pytest's summary; under CI=true that is a failure instead. Measurements go to
tests/artifacts/live-report.json (and .md).
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from python_on_whales import DockerClient
from python_on_whales.utils import run as run_docker

from arenastack import cli
from arenastack.core.services import WEBUI_PORT
from arenastack.gateway import litellm
from tests.conftest import REPO, make_tiny_models
from tests.images import build_stale_images, on_ci, why_images_cannot_be_built
from tests.ports import free_port

LIVE = Path(__file__).resolve().parent
MANIFEST = LIVE / "manifest.yaml"
SWAP_MANIFEST = LIVE / "manifest-swap.yaml"
ARTIFACTS = REPO / "tests" / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
UP_TIMEOUT_S = 900


def artifact(name: str) -> Path:
    """A path under tests/artifacts/, which a fresh clone does not have yet."""
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class LiveTestsSkipped(UserWarning):
    """Shown in pytest's warnings summary, so that a skipped live suite is never mistaken for a
    passed one."""


# --- one run: its project name, its ports, its files ---------------------------------------


@dataclass
class Run:
    """The files and names of one live run. Every `port` in a manifest is replaced by a free port,
    the same one for the same field in every manifest of the run (a swap must not move ports)."""

    project: str = field(default_factory=lambda: f"arenastack-live-{secrets.token_hex(4)}")
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def compose_file(self) -> Path:
        return LIVE / f".run-{self.project}.compose.yml"

    def manifest(self, source: Path) -> Path:
        """The run's copy of `source`, beside it so that relative model paths still hold."""
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        data["project"] = self.project
        self._replace_ports(data, "")
        copy = LIVE / f".run-{self.project}-{source.stem}.yaml"
        copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return copy

    def _replace_ports(self, data: Any, path: str) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                where = f"{path}.{key}"
                if key == "port" and isinstance(value, int):
                    if where not in self.ports:
                        self.ports[where] = free_port(taken=self.ports.values())
                    data[key] = self.ports[where]
                else:
                    self._replace_ports(value, where)

    def render(self, source: Path) -> Path:
        manifest = self.manifest(source)
        assert cli.main([str(manifest), "-o", str(self.compose_file)]) == 0
        return manifest

    def remove_files(self) -> None:
        for path in LIVE.glob(f".run-{self.project}*"):
            path.unlink()


RUN = Run()


# --- why the live tests might not run -------------------------------------------------------

SKIPPED: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for reason in SKIPPED:
        terminalreporter.write_sep("!", f"LIVE TESTS SKIPPED: {reason}", red=True, bold=True)


# --- the report -------------------------------------------------------------------------------


@dataclass
class Report:
    """Figures the live tests measure, written once at the end of the session."""

    figures: dict[str, Any] = field(default_factory=dict)

    def write(self) -> None:
        artifact("live-report.json").write_text(json.dumps(self.figures, indent=2) + "\n")
        lines = ["# Live stack report", "", "| figure | value |", "|---|---|"]
        lines += [f"| {key} | {json.dumps(value)} |" for key, value in self.figures.items()]
        artifact("live-report.md").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    collected = Report()
    yield collected
    collected.write()


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    docker: DockerClient
    report: Report
    manifest: Path
    ports: Any  # pytest-docker's Services: port_for(service, container_port)
    # When each container first started, read as soon as the stack was up: later tests restart
    # some, which moves their StartedAt.
    first_started: dict[str, float] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return RUN.project

    @property
    def compose_file(self) -> Path:
        return RUN.compose_file

    @cached_property
    def services(self) -> list[str]:
        document = yaml.safe_load(RUN.compose_file.read_text())
        return list(document["services"])

    def url(self, service: str, container_port: int) -> str:
        return f"http://127.0.0.1:{self.ports.port_for(service, container_port)}"

    def container_id(self, service: str) -> str:
        (container,) = self.docker.compose.ps(services=[service], all=True)
        return container.id

    def inspect(self, service: str) -> dict[str, Any]:
        """One raw inspection. python-on-whales re-inspects a container whose cached state is
        older than 10 ms, so two of its attributes read one after the other may describe two
        moments; fields that must agree (restart count and health) come from here."""
        command = [*self.docker.client_config.docker_cmd, "inspect", self.container_id(service)]
        data: list[dict[str, Any]] = json.loads(cast(str, run_docker(command)))
        return data[0]

    def logs(self, service: str, tail: int | None = None) -> str:
        text = self.docker.compose.logs(
            services=[service], tail=None if tail is None else str(tail)
        )
        assert isinstance(text, str)
        return text

    def exec(self, service: str, command: list[str]) -> str:
        output = self.docker.compose.execute(service, command, tty=False)
        assert isinstance(output, str)
        return output

    def started(self, service: str) -> float:
        """When the engine last started the service's container (epoch seconds)."""
        return _epoch(self.inspect(service)["State"]["StartedAt"])

    def logged(self, service: str, text: str = "") -> float:
        """When the engine received the service's first log line containing `text` (any line:
        its first), across restarts: the log keeps every run of the container.

        Start order is read from the engine's log timestamps, not from `docker events` (the
        engine keeps only its last 256 events for a `since` query, and the healthchecks' exec
        events push a start out of that window within about a minute) nor from StartedAt
        (which a restart moves: the gateway test restarts tiny-b before the order is read)."""
        lines = self.docker.compose.logs(services=[service], timestamps=True)
        assert isinstance(lines, str)
        for line in lines.splitlines():
            if "|" in line and text in line.split("|", 1)[1]:
                # "<project>-tiny-a-1  | 2026-11-25T16:40:01.123456789Z INFO ..."
                stamp = line.split("|", 1)[1].split()[0]
                return _epoch(stamp)
        raise AssertionError(f"{service} never logged {text!r}")


def _epoch(stamp: str) -> float:
    """Docker's RFC 3339 timestamps carry nanoseconds, which datetime does not parse."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
    return seconds + float(f"0.{fraction or 0}")


def compose_client() -> DockerClient:
    return DockerClient(compose_files=[RUN.compose_file], compose_project_name=RUN.project)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return RUN.project


@pytest.fixture(scope="session")
def docker_compose_file(live_manifest: Path) -> str:
    return str(RUN.compose_file)


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # The images are built beforehand (tests/images.py); never pulled.
    return [f"up --detach --wait --wait-timeout {UP_TIMEOUT_S}"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down --volumes --remove-orphans"]


@pytest.fixture(scope="session")
def live_manifest(report: Report) -> Iterator[Path]:
    """Render the run's manifest and build what is stale; skip (or fail on CI) where the live
    stack cannot run."""
    reason = why_images_cannot_be_built(DockerClient())
    if reason:
        if on_ci():
            pytest.fail(f"LIVE TESTS CANNOT RUN ON CI: {reason}", pytrace=False)
        SKIPPED.append(reason)
        warnings.warn(LiveTestsSkipped(reason), stacklevel=1)
        pytest.skip(f"live stack unavailable: {reason}")
    make_tiny_models()
    # The gateway's master key, one per run unless the shell has one: Compose passes it to the
    # gateway by name from this process's environment (tests/live/test_gateway.py).
    os.environ.setdefault(litellm.MASTER_KEY_ENV, f"sk-live-{secrets.token_hex(16)}")
    manifest = RUN.render(MANIFEST)
    started = time.monotonic()
    report.figures["images_built"] = build_stale_images(RUN.compose_file)
    report.figures["images_build_s"] = round(time.monotonic() - started, 1)
    try:
        yield manifest
    finally:
        RUN.remove_files()


def print_unhealthy_logs(docker: DockerClient) -> None:
    """What a failed `up` leaves to read: the last lines of every service not healthy."""
    for container in docker.compose.ps(all=True):
        state = container.state
        health = state.health.status if state.health else None
        if state.running and health in (None, "healthy"):
            continue
        labels = container.config.labels or {}
        service = labels.get("com.docker.compose.service", container.name)
        print(f"\n--- {service}: {state.status}, health {health} ---")
        print(docker.compose.logs(services=[service], tail="60"))


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, live_manifest: Path, report: Report) -> Stack:
    docker = compose_client()
    started = time.monotonic()
    try:
        services = request.getfixturevalue("docker_services")
    except Exception:
        print_unhealthy_logs(docker)
        docker.compose.down(volumes=True, remove_orphans=True)
        raise
    report.figures["stack_up_to_all_healthy_s"] = round(time.monotonic() - started, 1)
    stack = Stack(docker=docker, report=report, manifest=live_manifest, ports=services)
    stack.first_started = {service: stack.started(service) for service in stack.services}
    try:
        with urllib.request.urlopen(stack.url("webui", WEBUI_PORT), timeout=10) as response:
            report.figures["webui_status_right_after_up"] = response.status
    except OSError as error:
        report.figures["webui_status_right_after_up"] = str(error)
    return stack


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """One Chromium for the session's browser tests."""
    from playwright.sync_api import sync_playwright

    # Screenshots of an earlier run must not pass for this one's.
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
