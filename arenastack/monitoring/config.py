"""The opt-in metrics stack's files, as both targets mount them: Prometheus's scrape config and
rules, Grafana's provisioning and the dashboard, all built as data from the plan."""

from __future__ import annotations

import json

from arenastack.core import serialize
from arenastack.manifest import Model
from arenastack.monitoring.dashboard import dashboard
from arenastack.monitoring.grafana import grafana_datasources, grafana_providers
from arenastack.monitoring.prometheus import prometheus_config, prometheus_rules
from arenastack.plan.vllm_metrics import MetricNames


def config_files(
    models: list[Model], device: str, names: MetricNames, residency: bool = False
) -> dict[str, str]:
    """Prometheus's config and rules, Grafana's provisioning and the dashboard, as text. Models
    are scraped by service name, which is their host name on the compose network and their
    Service's DNS name in a Kubernetes namespace alike."""
    return {
        "prometheus_config": serialize.dump(prometheus_config(models, device, residency)),
        "prometheus_rules": serialize.dump(prometheus_rules(models, device)),
        "grafana_datasources": serialize.dump(grafana_datasources()),
        "grafana_providers": serialize.dump(grafana_providers()),
        "grafana_dashboard": json.dumps(dashboard(models, names, device, residency), indent=1),
    }
