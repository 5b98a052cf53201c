"""`render.py up`: render, build what is missing, start the stack and watch it come up.

`docker compose up -d` runs in the background (Compose starts the models one after another per
GPU, each after the previous one's /health); this module looks at the containers once a second
and shows one line per model, in start order per GPU, plus the controller, the UI and the
monitoring services:

    waiting for its turn · starting · loading · healthy · restarting · failed

It stops at the first failure (the failing service's last log lines, one line of likely cause,
exit status 1) or when everything is healthy (the UI's address and the seconds it took).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml
from python_on_whales import DockerClient

from arenastack.manifest import Manifest, Model
from arenastack.operate import stack_state
from arenastack.operate.diagnosis import likely_cause
from arenastack.operate.stack_state import Container
from arenastack.render import residency
from arenastack.render.stack import start_order

FETCH = "fetch-models"
# vLLM's first words about weights (V0 and V1 engines, CUDA and CPU).
LOADING = re.compile(
    r"Starting to load model|Loading model weights|Loading weights|Loading safetensors"
    r"|Model loading took|Loading model from"
)
LOG_LINES = 40
FAILED = "failed"
HEALTHY = "healthy"


@dataclass
class Line:
    service: str
    label: str  # what the line is called: "GPU 0 · tiny-a", "controller"
    state: str = "waiting"
    detail: str = ""
    since: float = 0.0  # monotonic time the current state began
    took: float | None = None  # seconds from start to healthy, frozen once healthy


@dataclass
class Failure:
    service: str
    reason: str
    log: list[str]
    cause: str | None


@dataclass
class Watch:
    """The state of every line, updated from looks at the containers; no Docker in here."""

    models: list[Model]
    others: list[str]
    max_restarts: int
    started: float
    device: str = "cuda"
    # GPUs whose models start together (plan.together): none of them waits for another.
    together: frozenset[int] = frozenset()
    # residency.awake_per_gpu: models start in waves, the earlier ones healthy once asleep.
    awake_per_gpu: int | None = None
    lines: dict[str, Line] = field(default_factory=dict)
    loading: set[str] = field(default_factory=set)
    after: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, Failure] = field(default_factory=dict)
    # Compose gave up after a failure: what has not started by then never will.
    abandoned: bool = False

    def __post_init__(self) -> None:
        chains = start_order(self.models, self.together, self.awake_per_gpu)
        self.after = dict(zip((m.service for m in self.models), chains, strict=True))
        self.sleepers: set[str] = set()
        if self.awake_per_gpu is not None:
            awake = residency.last_wave(self.models, self.awake_per_gpu)
            self.sleepers = {m.service for m in self.models} - awake
        self.lines[FETCH] = Line(FETCH, FETCH, since=self.started)
        for model in ordered(self.models):
            self.lines[model.service] = Line(
                model.service, model_label(model, self.device), since=self.started
            )
        for service in self.others:
            self.lines[service] = Line(service, service, since=self.started)

    def update(self, containers: dict[str, Container], clock: float) -> None:
        for service, line in self.lines.items():
            state, detail = self._state(service, containers.get(service))
            if state != line.state:
                line.since = clock
                if state == HEALTHY:
                    line.took = clock - self.started
            line.state, line.detail = state, detail

    def _state(self, service: str, container: Container | None) -> tuple[str, str]:
        if service in self.failed:
            return FAILED, self.failed[service].reason
        if self.blocked(service):
            return "not started", "after " + ", ".join(self.after[service])
        if service == FETCH:
            if container is None or container.status == "created":
                return "waiting", ""
            if container.status == "running":
                return "downloading", "hub models into the shared cache"
            if container.exit_code == 0:
                return "done", ""
            return FAILED, f"exited with status {container.exit_code}"
        if container is None or container.status == "created":
            waits = self.after.get(service)
            if waits:
                return "waiting for its turn", "after " + ", ".join(waits)
            return "waiting", "for fetch-models" if service in self.after else ""
        if container.health == HEALTHY:
            if self.awake_per_gpu is not None and service in self.after:
                # An earlier wave's model is healthy once asleep; the last wave stays awake.
                return HEALTHY, "asleep, woken on demand" if service in self.sleepers else "awake"
            return HEALTHY, ""
        if container.status in ("restarting", "exited", "dead") or container.restarts:
            return "restarting", f"{container.restarts} restart(s)"
        if service in self.loading:
            return "loading", ""
        return "starting", ""

    @property
    def all_healthy(self) -> bool:
        return all(line.state in (HEALTHY, "done") for line in self.lines.values())

    def blocked(self, service: str) -> bool:
        """It waits, directly or through others, for a service that failed."""
        return any(w in self.failed or self.blocked(w) for w in self.after.get(service, []))

    @property
    def settled(self) -> bool:
        """Nothing is left to come up: every line is healthy, failed, or never to start."""
        never = ("not started", "waiting", "waiting for its turn") if self.abandoned else ()
        final = (HEALTHY, "done", FAILED, "not started", *never)
        return all(line.state in final for line in self.lines.values())

    def failure(
        self, containers: dict[str, Container], logs: Callable[[Container], list[str]]
    ) -> Failure | None:
        """The first service that has failed: an exit with a known cause, more restarts than
        allowed, an unhealthy verdict, or the model fetcher's error."""
        for service in self.lines:
            container = containers.get(service)
            if container is None or service in self.failed:
                continue
            if service == FETCH:
                if container.status == "exited" and container.exit_code not in (0, None):
                    log = logs(container)
                    return Failure(
                        service,
                        f"exited with status {container.exit_code}",
                        log,
                        likely_cause(service, log, container),
                    )
                continue
            exited = container.status in ("restarting", "exited", "dead") or container.restarts > 0
            if not exited and container.health != "unhealthy":
                continue
            log = logs(container)
            cause = likely_cause(service, log, container)
            if container.health == "unhealthy":
                return Failure(service, "its healthcheck failed", log, cause)
            if cause is not None or container.restarts >= self.max_restarts:
                reason = f"exited (status {container.exit_code}, {container.restarts} restart(s))"
                return Failure(service, reason, log, cause)
        return None


def ordered(models: list[Model]) -> list[Model]:
    """Start order per GPU: by first GPU, then manifest order (which is the start order)."""
    return sorted(models, key=lambda m: min(m.gpus) if m.gpus != "auto" else 0)


def model_label(model: Model, device: str) -> str:
    assert model.gpus != "auto"
    gpus = "+".join(str(i) for i in model.gpus)
    # On CPU, `gpu` names a start slot.
    return f"{'slot' if device == 'cpu' else 'GPU'} {gpus} · {model.service}"


# --- output --------------------------------------------------------------------------------


def format_line(line: Line, clock: float) -> str:
    elapsed = line.took if line.state == HEALTHY and line.took is not None else clock - line.since
    detail = f" ({line.detail})" if line.detail else ""
    return f"{line.label:<28} {line.state:<20} {elapsed:6.0f}s{detail}"


class Printer:
    """On a terminal, a table redrawn in place (rich); otherwise one line per change."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown: dict[str, tuple[str, str]] = {}
        self.live: Any = None
        if stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=stream), refresh_per_second=2, transient=False)
            self.live.start()

    def show(self, watch: Watch, clock: float) -> None:
        if self.live is not None:
            from rich.table import Table

            table = Table(box=None, show_header=False)
            for line in watch.lines.values():
                table.add_row(format_line(line, clock))
            self.live.update(table)
            return
        for service, line in watch.lines.items():
            if self.shown.get(service) != (line.state, line.detail):
                self.shown[service] = (line.state, line.detail)
                print(
                    f"[{clock - watch.started:5.0f}s] {format_line(line, clock)}",
                    file=self.stream,
                    flush=True,
                )

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


# --- the command ---------------------------------------------------------------------------


def build_missing(docker: DockerClient, document: dict[str, Any], stream: TextIO) -> None:
    for service, spec in document["services"].items():
        if "build" in spec and not docker.image.exists(spec["image"]):
            print(f"building {spec['image']} (service {service}) ...", file=stream, flush=True)
            docker.compose.build([service])


def web_address(manifest: Manifest) -> str:
    host = manifest.webui.bind_address or manifest.bind_address
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{manifest.webui.port}"


def up(
    manifest: Manifest,
    models: list[Model],
    location: stack_state.Location,
    max_restarts: int,
    timeout_s: float,
    stream: TextIO = sys.stdout,
    together: frozenset[int] = frozenset(),
) -> int:
    document = yaml.safe_load(location.compose_file.read_text(encoding="utf-8"))
    awake_per_gpu = manifest.residency.awake_per_gpu if manifest.residency else None
    project = location.project
    docker = location.client()
    build_missing(docker, document, stream)
    others = [
        s for s in ("controller", "webui", "prometheus", "grafana") if s in document["services"]
    ]
    started = time.monotonic()
    others += ["residency"] if "residency" in document["services"] else []
    watch = Watch(models, others, max_restarts, started, manifest.device, together, awake_per_gpu)

    def report(failure: Failure) -> None:
        _report_failure(docker, failure, stream)

    with tempfile.TemporaryFile(mode="w+") as compose_output:
        starter = subprocess.Popen(
            [*docker.client_config.docker_compose_cmd, "up", "--detach", "--remove-orphans"],
            stdout=compose_output,
            stderr=subprocess.STDOUT,
        )
        printer = Printer(stream)
        try:
            failures = _watch(
                docker, project, watch, starter, compose_output, timeout_s, printer, report
            )
        finally:
            printer.stop()
            if starter.poll() is None:
                starter.terminate()
                starter.wait(timeout=30)
    if failures:
        healthy = [s for s, line in watch.lines.items() if line.state == HEALTHY]
        print(
            f"\nfailed: {', '.join(f.service for f in failures)}; healthy: "
            f"{', '.join(healthy) or 'none'}",
            file=stream,
        )
        print(f"remove it all with: docker compose -p {project} down", file=stream)
        return 1
    took = time.monotonic() - started
    print(f"all healthy after {took:.0f} s; the arena is at {web_address(manifest)}", file=stream)
    return 0


def _watch(
    docker: DockerClient,
    project: str,
    watch: Watch,
    starter: subprocess.Popen[bytes],
    compose_output: Any,
    timeout_s: float,
    printer: Printer,
    on_failure: Callable[[Failure], None],
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Failure]:
    """Looks at the stack once a second until every service is healthy, or failed, or will never
    start because what it waits for failed. Each failure is handed to `on_failure` as it is
    found, and the others are still watched: models that start together do not stop for one
    that fails. `now` is the clock `watch.started` was read from."""

    def logs(container: Container) -> list[str]:
        return stack_state.logs(docker, container, LOG_LINES)

    def record(failure: Failure) -> None:
        watch.failed[failure.service] = failure
        on_failure(failure)

    while True:
        clock = now()
        containers = stack_state.look(docker, project)
        for model in watch.models:
            container = containers.get(model.service)
            if (
                container is not None
                and container.status == "running"
                and container.health != HEALTHY
                and model.service not in watch.loading
                and any(LOADING.search(line) for line in stack_state.logs(docker, container, 200))
            ):
                watch.loading.add(model.service)
        while (failure := watch.failure(containers, logs)) is not None:
            record(failure)
        watch.update(containers, clock)
        printer.show(watch, clock)
        if watch.all_healthy:
            return []
        if watch.failed and watch.settled:
            return list(watch.failed.values())
        code = starter.poll()
        if code not in (None, 0) and not watch.abandoned:
            # Compose gives up when a container it waits for fails, which can fall between
            # the look above and this poll: a fresh look names the service, not Compose.
            if not watch.failed:
                failure = watch.failure(stack_state.look(docker, project), logs)
                if failure is None:
                    compose_output.seek(0)
                    text = compose_output.read().splitlines()[-LOG_LINES:]
                    return [Failure("docker compose up", f"exited with status {code}", text, None)]
                record(failure)
            watch.abandoned = True
            continue
        if clock - watch.started > timeout_s:
            waiting = [s for s, line in watch.lines.items() if line.state not in (HEALTHY, "done")]
            late = Failure(", ".join(waiting), f"not healthy after {timeout_s:.0f} s", [], None)
            return [*watch.failed.values(), late]
        sleep(1.0)


def _report_failure(docker: DockerClient, failure: Failure, stream: TextIO) -> None:
    print(f"\nfailed: {failure.service} {failure.reason}", file=stream)
    if failure.log:
        print(f"--- last {len(failure.log)} log lines of {failure.service} ---", file=stream)
        for line in failure.log:
            print(f"  {line}", file=stream)
        print("---", file=stream)
    if failure.cause:
        print(f"likely cause: {failure.cause}", file=stream)
    if failure.service in _services(docker):
        # A server that cannot start would otherwise restart for ever.
        docker.compose.stop([failure.service])
        print(f"stopped {failure.service}; the others are still watched.", file=stream)


def _services(docker: DockerClient) -> list[str]:
    try:
        return list(docker.compose.config(return_json=True)["services"])
    except Exception:  # the stop is a courtesy; the report stands without it
        return []
