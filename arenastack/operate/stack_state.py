"""What the running stack looks like: one `docker inspect` per look, read into plain records.

Both `render.py up` (its live view) and `render.py status` read the stack through this module,
through python-on-whales. A look inspects every container of the project in one call, so the
state, health and restart count of a container always come from the same moment.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.utils import run

from arenastack.core.services import VLLM_PORT
from arenastack.manifest import Manifest, Model

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


DEFAULT_COMPOSE_FILE = Path("docker-compose.yml")


def project_name(manifest: Manifest, compose_file: Path) -> str:
    """The manifest's `project`, else what Compose derives from the compose file's folder."""
    if manifest.project:
        return manifest.project
    folder = compose_file.resolve().parent.name.lower()
    return re.sub(r"[^a-z0-9_-]", "", folder).lstrip("_-") or "default"


def add_location_options(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """The options by which `up`, `status` and `leaderboard` all find the stack: its compose
    file (`aliases` are older spellings a command keeps) and, rarely needed, its project."""
    parser.add_argument(
        "-o",
        "--output",
        *aliases,
        dest="output",
        type=Path,
        default=DEFAULT_COMPOSE_FILE,
        help=f"compose file of the stack (default {DEFAULT_COMPOSE_FILE}); the stack's "
        "containers are found by its Compose project, the manifest's `project` or else this "
        "file's folder name, as Compose names it",
    )
    parser.add_argument(
        "-p",
        "--project",
        help="Compose project name, where the stack was started under another one",
    )


@dataclass(frozen=True)
class Location:
    """Where a running stack is: its compose file and the Compose project its containers carry."""

    compose_file: Path
    project: str

    def client(self) -> DockerClient:
        return DockerClient(compose_files=[self.compose_file], compose_project_name=self.project)


def locate(manifest: Manifest, args: argparse.Namespace) -> Location:
    project = args.project or project_name(manifest, args.output)
    return Location(args.output, project)


@dataclass(frozen=True)
class Container:
    service: str
    id: str
    status: str  # created, running, restarting, exited, dead, paused
    health: str | None  # starting, healthy, unhealthy; None without a healthcheck
    restarts: int
    exit_code: int | None
    oom_killed: bool
    started_at: datetime | None
    ip_address: str | None
    pid: int | None

    def uptime_s(self, now: datetime) -> float | None:
        if self.status != "running" or self.started_at is None:
            return None
        return max(0.0, (now - self.started_at).total_seconds())


def _time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-"):
        return None
    # Docker writes nanoseconds; Python reads microseconds.
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(trimmed)
    except ValueError:
        return None


def from_inspect(raw: dict[str, Any]) -> Container:
    state = raw.get("State") or {}
    health = state.get("Health") or {}
    networks = (raw.get("NetworkSettings") or {}).get("Networks") or {}
    addresses = [n.get("IPAddress") for n in networks.values() if n.get("IPAddress")]
    labels = (raw.get("Config") or {}).get("Labels") or {}
    return Container(
        service=labels.get(SERVICE_LABEL, ""),
        id=raw.get("Id", ""),
        status=state.get("Status", "unknown"),
        health=health.get("Status"),
        restarts=int(raw.get("RestartCount") or 0),
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        started_at=_time(state.get("StartedAt")),
        ip_address=addresses[0] if addresses else None,
        pid=state.get("Pid") or None,
    )


def look(docker: DockerClient, project: str) -> dict[str, Container]:
    """The project's containers by service (the newest when a service has several)."""
    ids = [
        c.id
        for c in docker.container.list(all=True, filters=[("label", f"{PROJECT_LABEL}={project}")])
    ]
    if not ids:
        return {}
    output = run([*docker.client_config.docker_cmd, "inspect", *ids])
    containers = [from_inspect(raw) for raw in json.loads(str(output))]
    by_service: dict[str, Container] = {}
    for container in containers:
        known = by_service.get(container.service)
        if known is None or (container.started_at or _EPOCH) > (known.started_at or _EPOCH):
            by_service[container.service] = container
    return by_service


def host_of(address: str) -> str:
    """Where a port bound to `address` is reached from this host."""
    return "127.0.0.1" if address in ("0.0.0.0", "::") else address


def server_address(manifest: Manifest, model: Model, container: Container | None) -> str | None:
    """`http://host:port` of a model's server from this host: its published port when there is
    one; else the container's address on its network (reachable from a Linux host)."""
    if model.port is not None:
        return f"http://{host_of(manifest.bind_address)}:{model.port}"
    if container is not None and container.ip_address:
        return f"http://{container.ip_address}:{VLLM_PORT}"
    return None


def logs(docker: DockerClient, container: Container, tail: int) -> list[str]:
    text = docker.container.logs(container.id, tail=tail)
    assert isinstance(text, str)
    return text.splitlines()


def now() -> datetime:
    return datetime.now(timezone.utc)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
