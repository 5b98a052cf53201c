"""`render.py status`: every model's container state and its load, read from its own /metrics.

Per model: state, health, restarts, uptime, GPU(s) and the fraction it was given; from
`/metrics`: KV-cache usage, requests running and waiting, time to first token p50/p95 (since the
server started), generation tokens/s; on a GPU host, the GPU memory its processes hold (NVML)
against the plan. A model still starting shows its state and no numbers.

Generation tokens/s come from Prometheus over the last minute when monitoring is on and its port
is published; otherwise from two reads of the server's counter `window` seconds apart.

With a gateway: whether it reaches each model, from LiteLLM's own /health
(arenastack/operate/gateway_health.py), or one line saying why that is unknown.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arenastack.core.services import RESIDENCY_PORT, RESIDENCY_SERVICE
from arenastack.manifest import GpuSpec, Manifest, Model
from arenastack.operate import gateway_health, stack_state
from arenastack.operate.gateway_health import GatewayHealth
from arenastack.operate.stack_state import Container
from arenastack.plan import vllm_metrics
from arenastack.plan.vllm_metrics import MetricNames, Sample

MIB = 2**20
TIMEOUT_S = 3.0


@dataclass
class ModelStatus:
    service: str
    display_name: str
    gpus: list[int]
    fraction: float | None  # --gpu-memory-utilization; None on CPU
    cpu_kvcache_space_gib: int | None
    state: str
    health: str | None
    restarts: int
    uptime_s: float | None
    metrics_url: str | None
    metrics_error: str | None = None
    kv_cache_usage: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None
    generation_tokens_total: float | None = None
    generation_tokens_per_s: float | None = None
    tokens_per_s_window_s: float | None = None
    tokens_per_s_source: str | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    gpu_memory_used_mib: float | None = None
    gpu_memory_planned_mib: float | None = None
    # KV cache sized in bytes (exact, or the elastic pool a model may fill) and how much of it
    # holds tokens now: vLLM's usage is of this capacity.
    kv_cache_bytes: int | None = None
    kv_cache_used_bytes: int | None = None
    # With residency: awake, asleep, waking, sleeping, starting or failed, as the residency
    # service says (None when it could not be asked).
    residency: str | None = None


@dataclass
class StackStatus:
    project: str
    metric_names: str
    models: list[ModelStatus]
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    gateway: GatewayHealth | None = None  # None: the stack has no gateway

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def metrics_url(manifest: Manifest, model: Model, container: Container | None) -> str | None:
    address = stack_state.server_address(manifest, model, container)
    return None if address is None else f"{address}/metrics"


def fetch(url: str) -> list[Sample]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return vllm_metrics.parse(response.read().decode("utf-8", "replace"))


def read_metrics(status: ModelStatus, samples: list[Sample], names: MetricNames) -> None:
    status.kv_cache_usage = vllm_metrics.highest(samples, names.kv_cache_usage)
    status.requests_running = vllm_metrics.total(samples, names.running)
    status.requests_waiting = vllm_metrics.total(samples, names.waiting)
    status.generation_tokens_total = vllm_metrics.total(samples, names.generation_tokens)
    ttft = vllm_metrics.buckets(samples, names.time_to_first_token)
    status.ttft_p50_s = vllm_metrics.quantile(0.5, ttft)
    status.ttft_p95_s = vllm_metrics.quantile(0.95, ttft)


def prometheus_rate(base_url: str, service: str, names: MetricNames) -> float | None:
    query = f'sum(rate({names.generation_tokens}{{service="{service}"}}[1m]))'
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        answer = json.load(response)
    result = answer.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else None


def collect(
    manifest: Manifest,
    models: list[Model],
    names: MetricNames,
    location: stack_state.Location,
    gpus: list[GpuSpec],
    window_s: float,
    footprints: dict[str, int] | None = None,
) -> StackStatus:
    """`footprints`: the plan's footprint of each model sized in bytes, its memory plan."""
    project = location.project
    docker = location.client()
    containers = stack_state.look(docker, project)
    moment = stack_state.now()
    statuses = []
    for model in models:
        container = containers.get(model.service)
        assert model.gpus != "auto"
        fraction = model.gpu_memory_utilization
        status = ModelStatus(
            service=model.service,
            display_name=model.display_name,
            gpus=list(model.gpus),
            fraction=None if manifest.device == "cpu" or isinstance(fraction, str) else fraction,
            cpu_kvcache_space_gib=model.cpu_kvcache_space if manifest.device == "cpu" else None,
            state=container.status if container else "absent",
            health=container.health if container else None,
            restarts=container.restarts if container else 0,
            uptime_s=container.uptime_s(moment) if container else None,
            metrics_url=metrics_url(manifest, model, container),
            kv_cache_bytes=model.kv_cache_memory_bytes if manifest.device == "cuda" else None,
        )
        if status.metrics_url and status.state == "running":
            try:
                read_metrics(status, fetch(status.metrics_url), names)
            except OSError as error:
                status.metrics_error = str(getattr(error, "reason", error))
        if status.kv_cache_bytes is not None and status.kv_cache_usage is not None:
            status.kv_cache_used_bytes = round(status.kv_cache_usage * status.kv_cache_bytes)
        statuses.append(status)
    if manifest.residency is not None:
        _residency_states(manifest, statuses, containers.get(RESIDENCY_SERVICE))
    _tokens_per_second(manifest, statuses, names, window_s)
    _gpu_memory(manifest, statuses, containers, gpus, footprints or {})
    services = {
        name: {"state": c.status, "health": c.health, "restarts": c.restarts}
        for name, c in containers.items()
        if name not in {m.service for m in models}
    }
    gateway = None
    if manifest.gateway.enabled or gateway_health.SERVICE in containers:
        gateway = gateway_health.check(
            containers.get(gateway_health.SERVICE),
            docker.client_config.docker_cmd,
            [model.service for model in models],
        )
    return StackStatus(project, names.label, statuses, services, gateway)


def _residency_states(
    manifest: Manifest, statuses: list[ModelStatus], service: Container | None
) -> None:
    """Each model's residency, from the residency service's GET /residency: through its
    published port, else its container's address."""
    assert manifest.residency is not None
    port = manifest.residency.port
    if port is not None:
        address = f"http://{stack_state.host_of(manifest.bind_address)}:{port}"
    elif service is not None and service.ip_address:
        address = f"http://{service.ip_address}:{RESIDENCY_PORT}"
    else:
        return
    try:
        with urllib.request.urlopen(f"{address}/residency", timeout=TIMEOUT_S) as response:
            models = json.load(response)["models"]
    except (OSError, ValueError, KeyError):
        return  # the service is not up: its own line below the table says so
    for status in statuses:
        status.residency = models.get(status.service, {}).get("state")


def _tokens_per_second(
    manifest: Manifest, statuses: list[ModelStatus], names: MetricNames, window_s: float
) -> None:
    readable = [s for s in statuses if s.generation_tokens_total is not None and s.metrics_url]
    if not readable:
        return
    port = manifest.monitoring.prometheus.port
    if manifest.monitoring.enabled and port is not None:
        host = stack_state.host_of(manifest.monitoring.bind_address or manifest.bind_address)
        try:
            for status in readable:
                status.generation_tokens_per_s = prometheus_rate(
                    f"http://{host}:{port}", status.service, names
                )
                status.tokens_per_s_window_s, status.tokens_per_s_source = 60.0, "prometheus"
            return
        except (OSError, ValueError, KeyError, IndexError):
            pass  # Prometheus not up yet: measure here instead
    first = {s.service: s.generation_tokens_total for s in readable}
    start = time.monotonic()
    time.sleep(window_s)
    for status in readable:
        assert status.metrics_url is not None
        try:
            later = vllm_metrics.total(fetch(status.metrics_url), names.generation_tokens)
        except OSError:
            continue
        before = first[status.service]
        if later is not None and before is not None:
            elapsed = time.monotonic() - start
            status.generation_tokens_per_s = max(0.0, later - before) / elapsed
            status.tokens_per_s_window_s, status.tokens_per_s_source = elapsed, "/metrics"


# --- NVML ------------------------------------------------------------------------------------


def container_of(pid: int, containers: dict[str, Container]) -> str | None:
    """The service whose container holds a host process, from the process's cgroup path."""
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for service, container in containers.items():
        if container.id and container.id in cgroup:
            return service
    return None


def _gpu_memory(
    manifest: Manifest,
    statuses: list[ModelStatus],
    containers: dict[str, Container],
    gpus: list[GpuSpec],
    footprints: dict[str, int],
) -> None:
    if manifest.device != "cuda":
        return
    for status in statuses:
        if status.service in footprints:
            status.gpu_memory_planned_mib = round(footprints[status.service] / MIB)
        elif status.fraction is not None and status.gpus and status.gpus[0] < len(gpus):
            total = gpus[status.gpus[0]].memory_gib * 1024
            status.gpu_memory_planned_mib = round(status.fraction * total)
    used = nvml_memory_by_service(containers)
    for status in statuses:
        if status.service in used:
            status.gpu_memory_used_mib = round(used[status.service] / MIB)


def nvml_memory_by_service(containers: dict[str, Container]) -> dict[str, int]:
    """Bytes of GPU memory the processes of each service's container hold, on the GPU it was
    given (per GPU, summed); empty without an NVIDIA driver."""
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return {}
    used: dict[str, int] = {}
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                service = container_of(process.pid, containers)
                if service is not None and process.usedGpuMemory:
                    used[service] = used.get(service, 0) + int(process.usedGpuMemory)
    finally:
        pynvml.nvmlShutdown()
    return used


# --- output ----------------------------------------------------------------------------------


def _number(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _kv_cache(status: ModelStatus) -> str:
    """Its usage, and where the cache is sized in bytes, how many GiB hold tokens of how many."""
    usage = status.kv_cache_usage
    text = _number(None if usage is None else usage * 100, ".1f", " %")
    if status.kv_cache_used_bytes is not None and status.kv_cache_bytes:
        text += (
            f" ({status.kv_cache_used_bytes / 2**30:.2f}/{status.kv_cache_bytes / 2**30:.1f} GiB)"
        )
    return text


def print_table(status: StackStatus, device: str) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{status.project} (vLLM metric names: {status.metric_names})")
    for column in (
        "model", "gpu", "given", "state", "health", "restarts", "uptime", "KV cache",
        "running", "waiting", "gen tok/s", "TTFT p50", "TTFT p95",
    ):  # fmt: skip
        table.add_column(column)
    if device == "cuda":
        table.add_column("GPU MiB used/plan")
    resident = any(m.residency for m in status.models)
    if resident:
        table.add_column("residency")
    gateway = status.gateway
    if gateway is not None:
        table.add_column("gateway")
    for m in status.models:
        given = (
            f"{m.cpu_kvcache_space_gib} GiB KV"
            if m.cpu_kvcache_space_gib
            else f"{m.fraction:g}"
            if m.fraction is not None
            else "-"
        )
        memory = (
            f"{_number(m.gpu_memory_used_mib, '.0f')}/{_number(m.gpu_memory_planned_mib, '.0f')}"
            if m.gpu_memory_planned_mib is not None
            else "-"
        )
        row = [
            m.service,
            ",".join(map(str, m.gpus)),
            given,
            m.state,
            m.health or "-",
            str(m.restarts),
            _number(m.uptime_s, ".0f", " s"),
            _kv_cache(m),
            _number(m.requests_running, ".0f"),
            _number(m.requests_waiting, ".0f"),
            _number(m.generation_tokens_per_s, ".1f"),
            _number(None if m.ttft_p50_s is None else m.ttft_p50_s * 1000, ".0f", " ms"),
            _number(None if m.ttft_p95_s is None else m.ttft_p95_s * 1000, ".0f", " ms"),
        ]
        if device == "cuda":
            row.append(memory)
        if resident:
            row.append(m.residency or "-")
        if gateway is not None:
            reach = gateway.models.get(m.service)
            row.append(reach.health if reach else "-")
        table.add_row(*row)
    # Piped, rich would fold the table into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for name, service in status.services.items():
        console.print(f"{name}: {service['state']}, health {service['health'] or '-'}")
    for line in gateway_lines(gateway):
        # One line each, however long: soft_wrap stops rich folding it at the width.
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    windows = {
        m.tokens_per_s_source: m.tokens_per_s_window_s
        for m in status.models
        if m.tokens_per_s_source
    }
    for source, window in windows.items():
        console.print(f"gen tok/s: from {source} over {window:.0f} s")


def gateway_lines(gateway: GatewayHealth | None) -> list[str]:
    """Below the table: why the gateway column is empty, or each model it cannot reach and
    LiteLLM's error."""
    if gateway is None:
        return []
    if gateway.problem is not None:
        return [f"gateway: per-model health unknown: {gateway.problem}"]
    lines = [
        f"gateway: {service} {reach.health}" + (f": {reach.error}" if reach.error else "")
        for service, reach in gateway.models.items()
        if reach.health != gateway_health.HEALTHY
    ]
    took = f" (asked in {gateway.took_s:.1f} s)" if gateway.took_s is not None else ""
    return lines or [f"gateway: reaches every model{took}"]
