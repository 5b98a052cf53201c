"""Monitoring on the live stack: Prometheus (Debian's package on the base image) scrapes every
model, and every PromQL expression of the rendered dashboard returns data for every model."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from openai import OpenAI

from arenastack.core.services import VLLM_PORT
from arenastack.monitoring.dashboard import RATE_WINDOW, dashboard_queries
from arenastack.monitoring.dashboard import dashboard as render_dashboard
from arenastack.monitoring.prometheus import JOB, PROMETHEUS_PORT
from arenastack.plan.vllm_metrics import metric_names
from arenastack.render.pipeline import prepare
from tests.live.conftest import Stack

pytestmark = pytest.mark.live

MODELS = ["tiny-a", "tiny-b", "tiny-q"]
# Grafana fills in $__rate_interval; a minute holds 12 scrapes at 5 s.
WINDOW = "1m"
DEADLINE_S = 120


def prometheus(stack: Stack, path: str, **params: str) -> Any:
    url = stack.url("prometheus", PROMETHEUS_PORT) + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = prometheus(stack, "/api/v1/query", query=expr)["result"]
    return result


def traffic(stack: Stack) -> None:
    """A few short chats per model, so every histogram and counter moves."""
    for service in MODELS:
        client = OpenAI(base_url=stack.url(service, VLLM_PORT) + "/v1", api_key="none", timeout=120)
        for n in range(3):
            client.chat.completions.create(
                model=service,
                messages=[{"role": "user", "content": f"Count to {n + 3}."}],
                max_tokens=12,
            )


def dashboard(stack: Stack) -> dict[str, Any]:
    """The dashboard the run's manifest renders (Grafana, and with it the dashboard's config, is
    off in the live manifest: no image here)."""
    prepared = prepare(stack.manifest)
    names = metric_names(prepared.dialect.version)
    return render_dashboard(prepared.plan.models, names, prepared.manifest.device)


def test_every_model_is_an_up_target(stack: Stack) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        targets = prometheus(stack, "/api/v1/targets")["activeTargets"]
        health = {t["labels"].get("service"): t["health"] for t in targets}
        if all(health.get(service) == "up" for service in MODELS):
            break
        assert time.monotonic() < deadline, f"targets not all up: {health}"
        time.sleep(1)
    for target in targets:
        labels = target["labels"]
        assert labels["job"] == JOB
        assert labels["fraction"] == "cpu:1GiB"
    by_service = {t["labels"]["service"]: t["labels"] for t in targets}
    assert by_service["tiny-q"]["display_name"] == "Tiny Qwen"
    assert (by_service["tiny-a"]["gpu"], by_service["tiny-q"]["gpu"]) == ("0", "1")
    stack.report.figures["prometheus_targets_up"] = sorted(health)


def test_every_dashboard_query_returns_data_for_every_model(stack: Stack) -> None:
    queries = [
        (title, expr.replace(RATE_WINDOW, WINDOW))
        for title, expr in dashboard_queries(dashboard(stack))
    ]
    assert {s for s in MODELS if any(f'service="{s}"' in e for _, e in queries)} == set(MODELS)
    traffic(stack)
    # Wait until Prometheus has scraped the traffic (two samples of every model's counter
    # after it), then every expression must hold a finite value.
    deadline = time.monotonic() + DEADLINE_S
    while True:
        empty = []
        for title, expr in queries:
            result = query(stack, expr)
            values = [float(series["value"][1]) for series in result]
            if not values or not all(math.isfinite(v) for v in values):
                empty.append((title, expr, values))
        if not empty:
            break
        if time.monotonic() > deadline:
            pytest.fail("dashboard queries without data:\n" + "\n".join(map(str, empty)))
        time.sleep(2)
    stack.report.figures["dashboard_queries_with_data"] = len(queries)
    generated = query(stack, 'sum by (service) (vllm:generation_tokens_total{job="vllm"})')
    assert {s["metric"]["service"] for s in generated} == set(MODELS)
    assert all(float(s["value"][1]) > 0 for s in generated)
