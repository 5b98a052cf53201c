"""Grafana's provisioning: the Prometheus datasource and the folder our dashboard is read from."""

from __future__ import annotations

from typing import Any

from arenastack.monitoring.prometheus import PROMETHEUS_PORT, SCRAPE_INTERVAL

GRAFANA_PORT = 3000


DATASOURCE_UID = "arenastack-prometheus"


GRAFANA_HEALTH = "/api/health"


GRAFANA_DATA = "/var/lib/grafana"


GRAFANA_DATASOURCES = "/etc/grafana/provisioning/datasources/arenastack.yaml"


GRAFANA_PROVIDERS = "/etc/grafana/provisioning/dashboards/arenastack.yaml"


GRAFANA_DASHBOARDS = "/etc/grafana/dashboards"


GRAFANA_HOME_DASHBOARD = f"{GRAFANA_DASHBOARDS}/arenastack.json"


# The password reaches Grafana by name: Compose reads it from the shell or .env at `up`.
GRAFANA_PASSWORD_VARIABLE = "GRAFANA_ADMIN_PASSWORD"


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
