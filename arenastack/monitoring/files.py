"""The opt-in metrics stack: Prometheus's scrape config and rules, Grafana's provisioning and the
dashboard, all built as data from the plan.

Prometheus scrapes every model server's `/metrics` every 5 s. Each target carries the labels
`service`, `display_name`, `gpu` and `fraction`; a recording rule per model turns the memory it
was given (its --gpu-memory-utilization, or its CPU KV-cache space) into a series the dashboard
can draw next to its load. Metric names follow the vLLM version the image runs (vllm_metrics).

The dashboard has one row per GPU (per start slot on CPU) and, in it, one group of panels per
model. `dashboard_queries` lists every PromQL expression in it, so a test can run each against a
live Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from arenastack.core import serialize
from arenastack.core.services import VLLM_PORT
from arenastack.manifest import Manifest, Model
from arenastack.plan.vllm_metrics import MetricNames

SCRAPE_INTERVAL = "5s"
JOB = "vllm"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
DATASOURCE_UID = "arenastack-prometheus"
DASHBOARD_UID = "arenastack-models"
# Grafana's own interval variable; tests put a fixed window in its place.
RATE_WINDOW = "$__rate_interval"
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
PROMETHEUS_RULES = "/etc/prometheus/arenastack-rules.yml"
PROMETHEUS_DATA = "/prometheus"
# 503 until the TSDB is loaded; /-/healthy answers as soon as the process serves.
PROMETHEUS_READY = "/-/ready"
PROMETHEUS_HEALTHY = "/-/healthy"
GRAFANA_HEALTH = "/api/health"
GRAFANA_DATA = "/var/lib/grafana"
GRAFANA_DATASOURCES = "/etc/grafana/provisioning/datasources/arenastack.yaml"
GRAFANA_PROVIDERS = "/etc/grafana/provisioning/dashboards/arenastack.yaml"
GRAFANA_DASHBOARDS = "/etc/grafana/dashboards"
GRAFANA_HOME_DASHBOARD = f"{GRAFANA_DASHBOARDS}/arenastack.json"
# The password reaches Grafana by name: Compose reads it from the shell or .env at `up`.
GRAFANA_PASSWORD_VARIABLE = "GRAFANA_ADMIN_PASSWORD"


def gpu_label(model: Model) -> str:
    assert model.gpus != "auto", "the planner places every model first"
    return "+".join(str(index) for index in model.gpus)


def fraction_label(model: Model, device: str) -> str:
    if device == "cpu":
        return f"cpu:{model.cpu_kvcache_space}GiB"
    assert not isinstance(model.gpu_memory_utilization, str)
    return f"{model.gpu_memory_utilization:g}"


def target_labels(model: Model, device: str) -> dict[str, str]:
    return {
        "service": model.service,
        "display_name": model.display_name,
        "gpu": gpu_label(model),
        "fraction": fraction_label(model, device),
    }


# --- the files, as both targets mount them ---------------------------------------------------


def config_files(models: list[Model], device: str, names: MetricNames) -> dict[str, str]:
    """Prometheus's config and rules, Grafana's provisioning and the dashboard, as text. Models
    are scraped by service name, which is their host name on the compose network and their
    Service's DNS name in a Kubernetes namespace alike."""
    return {
        "prometheus_config": serialize.dump(prometheus_config(models, device)),
        "prometheus_rules": serialize.dump(prometheus_rules(models, device)),
        "grafana_datasources": serialize.dump(grafana_datasources()),
        "grafana_providers": serialize.dump(grafana_providers()),
        "grafana_dashboard": json.dumps(dashboard(models, names, device), indent=1),
    }


def prometheus_arguments(retention: str) -> list[str]:
    """The flags after the entrypoint, which is the prometheus binary in both images."""
    return [
        f"--config.file={PROMETHEUS_CONFIG}",
        f"--storage.tsdb.path={PROMETHEUS_DATA}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address=0.0.0.0:{PROMETHEUS_PORT}",
    ]


# --- Prometheus ------------------------------------------------------------------------------


def prometheus_config(models: list[Model], device: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [PROMETHEUS_RULES],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [
                    {
                        "targets": [f"{model.service}:{VLLM_PORT}"],
                        "labels": target_labels(model, device),
                    }
                    for model in models
                ],
            }
        ],
    }


def memory_share_metric(device: str) -> str:
    return (
        "arenastack:cpu_kvcache_space_gib" if device == "cpu" else "arenastack:gpu_memory_fraction"
    )


def prometheus_rules(models: list[Model], device: str) -> dict[str, Any]:
    """A constant series per model: the memory the plan gave it."""
    rules = []
    for model in models:
        if device == "cpu":
            value: float = model.cpu_kvcache_space
        else:
            assert not isinstance(model.gpu_memory_utilization, str)
            value = model.gpu_memory_utilization
        rules.append(
            {
                "record": memory_share_metric(device),
                "expr": f"vector({value:g})",
                "labels": {"job": JOB, **target_labels(model, device)},
            }
        )
    return {"groups": [{"name": "arenastack-plan", "rules": rules}]}


# --- Grafana ---------------------------------------------------------------------------------


def grafana_datasources() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": DATASOURCE_UID,
                "access": "proxy",
                "url": f"http://prometheus:{PROMETHEUS_PORT}",
                "isDefault": True,
                "jsonData": {"timeInterval": SCRAPE_INTERVAL},
            }
        ],
    }


def grafana_providers() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "arenastack",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": GRAFANA_DASHBOARDS},
            }
        ],
    }


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"


def _selector(model: Model) -> str:
    return f'{{job="{JOB}", service="{model.service}"}}'


def _quantiles(names: str, histogram: str, model: Model) -> Iterator[Query]:
    for q in (0.5, 0.95):
        yield Query(
            f"histogram_quantile({q}, sum by (le) "
            f"(rate({histogram}_bucket{_selector(model)}[{RATE_WINDOW}])))",
            f"{names} p{round(q * 100)}",
        )


def model_panels(model: Model, names: MetricNames, device: str) -> list[PanelSpec]:
    """The panels of one model, in the order they sit in its GPU's row."""
    s = _selector(model)
    share = (
        PanelSpec(
            "KV cache space given",
            "gbytes",
            (Query(f"{memory_share_metric(device)}{s}", "GiB"),),
            "stat",
        )
        if device == "cpu"
        else PanelSpec(
            "GPU memory fraction given",
            "percentunit",
            (Query(f"{memory_share_metric(device)}{s}", "fraction"),),
            "stat",
        )
    )
    return [
        PanelSpec(
            "KV-cache usage",
            "percentunit",
            (Query(f"max({names.kv_cache_usage}{s})", "used"),),
        ),
        PanelSpec(
            "Requests",
            "short",
            (
                Query(f"sum({names.running}{s})", "running"),
                Query(f"sum({names.waiting}{s})", "waiting"),
            ),
        ),
        PanelSpec(
            "Latency",
            "s",
            (
                *_quantiles("TTFT", names.time_to_first_token, model),
                *_quantiles("inter-token", names.inter_token_latency, model),
            ),
        ),
        PanelSpec(
            "Tokens/s",
            "short",
            (
                Query(f"sum(rate({names.prompt_tokens}{s}[{RATE_WINDOW}]))", "prompt"),
                Query(f"sum(rate({names.generation_tokens}{s}[{RATE_WINDOW}]))", "generation"),
            ),
        ),
        PanelSpec(
            "Preemptions",
            "short",
            (Query(f"sum(increase({names.preemptions}{s}[{RATE_WINDOW}]))", "preempted"),),
        ),
        share,
    ]


def rows(models: list[Model]) -> dict[int, list[Model]]:
    """Models by GPU (start slot on CPU), in start order; a tensor-parallel model is in each of
    its GPUs' rows."""
    by_gpu: dict[int, list[Model]] = {}
    for model in models:
        assert model.gpus != "auto"
        for index in model.gpus:
            by_gpu.setdefault(index, []).append(model)
    return dict(sorted(by_gpu.items()))


PANEL_WIDTH = 4
PANEL_HEIGHT = 7


def dashboard(models: list[Model], names: MetricNames, device: str) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    word = "Start slot" if device == "cpu" else "GPU"
    for index, on_gpu in rows(models).items():
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": f"{word} {index}: " + ", ".join(m.display_name for m in on_gpu),
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        for model in on_gpu:
            for column, spec in enumerate(model_panels(model, names, device)):
                panels.append(_panel(next_id, model, spec, column, y))
                next_id += 1
            y += PANEL_HEIGHT
    return {
        "uid": DASHBOARD_UID,
        "title": "arenastack: models by GPU",
        "description": "One row per GPU, one group of panels per model, with the memory each "
        f"was given. vLLM metric names: {names.label}.",
        "tags": ["arenastack", "vllm"],
        "timezone": "browser",
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "panels": panels,
        "templating": {"list": []},
        "annotations": {"list": []},
    }


def _panel(panel_id: int, model: Model, spec: PanelSpec, column: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": spec.kind,
        "title": f"{model.display_name}: {spec.title}",
        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
        "gridPos": {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": column * PANEL_WIDTH, "y": y},
        "fieldConfig": {"defaults": {"unit": spec.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for n, query in enumerate(spec.queries)
        ],
    }


def dashboard_queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) for every query of a dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in document["panels"]
        for target in panel.get("targets", [])
    ]


# --- compose ---------------------------------------------------------------------------------


def enabled(manifest: Manifest) -> bool:
    return manifest.monitoring.enabled
