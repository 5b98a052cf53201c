"""The live stack: rendered from tests/live/manifest.yaml, built and started with the real Docker
Compose, real vLLM (CPU backend) and real FastChat, torn down at the end.

Where no Docker engine answers, the live tests skip with one loud line; on a CI machine (CI=true
with /var/run/docker.sock present) that is a failure instead. Measurements go to
tests/artifacts/live-report.json (and .md).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from arenastack import cli
from tests.conftest import REPO, make_tiny_models

LIVE = Path(__file__).resolve().parent
MANIFEST = LIVE / "manifest.yaml"
SWAP_MANIFEST = LIVE / "manifest-swap.yaml"
COMPOSE_FILE = LIVE / "docker-compose.yml"
PROJECT = "arenastack-live"
ARTIFACTS = REPO / "tests" / "artifacts"
BASE_IMAGE = "arenastack/base:bookworm"
UP_TIMEOUT_S = 900
UI = "http://127.0.0.1:17860"
# Which recipe each locally built image was last built from: sending the multi-GB build contexts
# to the engine takes minutes even when every layer is cached, so unchanged images are not rebuilt.
BUILT = Path.home() / ".cache" / "arenastack" / "built-images.json"


def compose(*args: str, timeout: float = UP_TIMEOUT_S + 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", PROJECT, *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def compose_ok(*args: str, timeout: float = UP_TIMEOUT_S + 60) -> str:
    result = compose(*args, timeout=timeout)
    assert result.returncode == 0, f"docker compose {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def recipes() -> dict[str, str]:
    """Image tag → digest of what it is built from: build args and every context file except the
    wheelhouse (whose content follows from the requirements files, which are hashed)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    found = {}
    for service in document["services"].values():
        if "build" not in service:
            continue
        context = (COMPOSE_FILE.parent / service["build"]["context"]).resolve()
        digest = hashlib.sha256(json.dumps(service["build"]["args"], sort_keys=True).encode())
        for path in sorted(context.rglob("*")):
            relative = path.relative_to(context)
            if path.is_file() and relative.parts[0] != "wheels":
                digest.update(str(relative).encode() + b"\0" + path.read_bytes())
        found[service["image"]] = digest.hexdigest()
    return found


def stale_images() -> dict[str, str]:
    built = json.loads(BUILT.read_text()) if BUILT.exists() else {}
    return {
        tag: digest
        for tag, digest in recipes().items()
        if built.get(tag) != digest
        or subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode
    }


def remember_built(images: dict[str, str]) -> None:
    built = json.loads(BUILT.read_text()) if BUILT.exists() else {}
    BUILT.parent.mkdir(parents=True, exist_ok=True)
    BUILT.write_text(json.dumps({**built, **images}, indent=2) + "\n")


def render(manifest: Path) -> None:
    assert cli.main([str(manifest), "-o", str(COMPOSE_FILE)]) == 0


def why_no_live_stack() -> str | None:
    try:
        subprocess.run(["docker", "info"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "no Docker engine answers `docker info`"
    if compose("version", timeout=30).returncode != 0:
        return "`docker compose` (v2 plugin) is missing: run tools/bootstrap"
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode:
        return f"the base image {BASE_IMAGE} is missing: run tools/bootstrap"
    return None


@dataclass
class Report:
    """Figures the live tests measure, written once at the end of the session."""

    figures: dict[str, Any] = field(default_factory=dict)

    def write(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "live-report.json").write_text(json.dumps(self.figures, indent=2) + "\n")
        lines = ["# Live stack report", "", "| figure | value |", "|---|---|"]
        lines += [f"| {key} | {json.dumps(value)} |" for key, value in self.figures.items()]
        (ARTIFACTS / "live-report.md").write_text("\n".join(lines) + "\n")


class Events:
    """`docker events` of the project, recorded in the background: container starts and health
    changes with the engine's own timestamps."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}",
             "--filter", f"label=com.docker.compose.project={PROJECT}"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.records.append(json.loads(line))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def times(self, service: str, action: str) -> list[float]:
        """Engine timestamps (s) of `action` ("start", "health_status: healthy") on `service`."""
        return [
            record["timeNano"] / 1e9
            for record in self.records
            if record.get("Type") == "container"
            and record.get("Action") == action
            and record["Actor"]["Attributes"].get("com.docker.compose.service") == service
        ]


@dataclass
class Stack:
    events: Events
    report: Report
    services: list[str]

    def container_id(self, service: str) -> str:
        return compose_ok("ps", "-q", service, timeout=60).strip()

    def inspect(self, service: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("inspect", self.container_id(service)))
        return data[0]


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    collected = Report()
    yield collected
    collected.write()


@pytest.fixture(scope="session")
def stack(report: Report) -> Iterator[Stack]:
    reason = why_no_live_stack()
    if reason:
        if os.environ.get("CI") == "true" and Path("/var/run/docker.sock").exists():
            pytest.fail(f"LIVE TESTS CANNOT RUN ON CI: {reason}")
        print(f"\n!!! LIVE TESTS SKIPPED: {reason} !!!")
        pytest.skip(reason)
    make_tiny_models()
    render(MANIFEST)
    compose("down", "-v", "--remove-orphans", timeout=300)

    started = time.monotonic()
    stale = stale_images()
    if stale:
        compose_ok("build")
        remember_built(stale)
    report.figures["images_built"] = sorted(stale)
    report.figures["images_build_s"] = round(time.monotonic() - started, 1)

    events = Events()
    started = time.monotonic()
    try:
        compose_ok("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S))
    except AssertionError:
        print(compose("logs", "--no-color", "--tail", "80", timeout=120).stdout)
        raise
    report.figures["stack_up_to_all_healthy_s"] = round(time.monotonic() - started, 1)
    try:
        with urllib.request.urlopen(UI, timeout=10) as response:
            report.figures["webui_status_right_after_up"] = response.status
    except OSError as error:
        report.figures["webui_status_right_after_up"] = str(error)
    models = ["tiny-a", "tiny-b", "tiny-q"]
    for service in models:
        start, healthy = (
            events.times(service, "start"),
            events.times(service, "health_status: healthy"),
        )
        if start and healthy:
            report.figures[f"{service}_start_to_healthy_s"] = round(healthy[0] - start[0], 1)
    try:
        yield Stack(events=events, report=report, services=models)
    finally:
        events.stop()
        compose("down", "-v", "--remove-orphans", timeout=300)
