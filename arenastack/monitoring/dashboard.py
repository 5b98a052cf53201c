"""The dashboard: one row per GPU (per start slot on CPU) and, in it, one group of panels per
model. `dashboard_queries` lists every PromQL expression in it, so a test can run each against a
live Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from arenastack.manifest import Model
from arenastack.monitoring.grafana import DATASOURCE_UID
from arenastack.monitoring.prometheus import (
    JOB,
    KV_CACHE_BYTES,
    RESIDENCY_JOB,
    memory_share_metric,
)
from arenastack.plan.vllm_metrics import MetricNames

DASHBOARD_UID = "arenastack-models"


# Grafana's own interval variable; tests put a fixed window in its place.
RATE_WINDOW = "$__rate_interval"


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
    usage = PanelSpec(
        "KV-cache usage", "percentunit", (Query(f"max({names.kv_cache_usage}{s})", "used"),)
    )
    if device == "cuda" and model.kv_cache_memory_bytes is not None:
        # Sized in bytes: how many of them hold tokens (with an elastic pool, the pages mapped).
        size = f"scalar(max({KV_CACHE_BYTES}{s}))"
        usage = PanelSpec(
            "KV cache in use",
            "bytes",
            (
                Query(f"max({names.kv_cache_usage}{s}) * {size}", "used"),
                Query(f"max({KV_CACHE_BYTES}{s})", "size"),
            ),
        )
    return [
        usage,
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


RESIDENCY = "arenastack_residency"
RESIDENCY_SELECTOR = f'{{job="{RESIDENCY_JOB}"}}'
# The residency service's own metrics (arenastack/residency/metrics.py), in a row above the GPUs.
RESIDENCY_PANELS = (
    PanelSpec(
        "models awake per GPU",
        "short",
        (Query(f"sum by (gpu) ({RESIDENCY}_awake{RESIDENCY_SELECTOR})", "GPU {{gpu}}"),),
    ),
    PanelSpec(
        "wakes and sleeps per minute",
        "short",
        (
            Query(
                f"60 * sum(rate({RESIDENCY}_wakes_total{RESIDENCY_SELECTOR}[{RATE_WINDOW}]))",
                "wakes",
            ),
            Query(
                f"60 * sum(rate({RESIDENCY}_sleeps_total{RESIDENCY_SELECTOR}[{RATE_WINDOW}]))",
                "sleeps",
            ),
        ),
    ),
    PanelSpec(
        "wake latency",
        "s",
        tuple(
            Query(
                f"histogram_quantile({q}, sum by (le) (rate({RESIDENCY}_wake_seconds_bucket"
                f"{RESIDENCY_SELECTOR}[{RATE_WINDOW}])))",
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.95)
        ),
    ),
    PanelSpec(
        "requests in flight",
        "short",
        (Query(f"{RESIDENCY}_in_flight{RESIDENCY_SELECTOR}", "{{model}}"),),
    ),
    PanelSpec(
        "failed wakes",
        "short",
        (Query(f"sum({RESIDENCY}_wake_failures_total{RESIDENCY_SELECTOR})", "failed wakes"),),
        "stat",
    ),
)


def dashboard(
    models: list[Model], names: MetricNames, device: str, residency: bool = False
) -> dict[str, Any]:
    """`residency`: a row for the residency service first."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    if residency:
        panels.append(_row(next_id, "Residency: who is awake, wakes and sleeps", y))
        next_id, y = next_id + 1, y + 1
        for column, spec in enumerate(RESIDENCY_PANELS):
            panels.append(_panel(next_id, None, spec, column, y))
            next_id += 1
        y += PANEL_HEIGHT
    word = "Start slot" if device == "cpu" else "GPU"
    for index, on_gpu in rows(models).items():
        title = f"{word} {index}: " + ", ".join(m.display_name for m in on_gpu)
        panels.append(_row(next_id, title, y))
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


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "panels": [],
    }


def _panel(
    panel_id: int, model: Model | None, spec: PanelSpec, column: int, y: int
) -> dict[str, Any]:
    """A model's panel, or (model None) one of the residency row."""
    return {
        "id": panel_id,
        "type": spec.kind,
        "title": spec.title if model is None else f"{model.display_name}: {spec.title}",
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
