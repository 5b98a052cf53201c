"""The gateway and the metrics services (opt-in, as on Compose), with the Compose target's files
in ConfigMaps."""

from __future__ import annotations

from typing import Any

from arenastack.core.services import GATEWAY_PORT, VLLM_PORT
from arenastack.gateway import litellm
from arenastack.monitoring import config, grafana, prometheus
from arenastack.plan.vllm_metrics import metric_names
from arenastack.render.kubernetes.documents import (
    CONFIG_DIGEST,
    GATEWAY_KEYS_SECRET,
    PART_OF,
    SCRIPTS_DIR,
    Cluster,
    configmap_resource,
    digest_of,
    env_list,
    file_name_of,
    folder_of,
    fragment,
    labels_of,
    scripts_mount,
    scripts_volume,
    selector_of,
    service_resource,
    unexpanded,
)
from arenastack.render.kubernetes.images import gateway_image, prometheus_image

# LiteLLM's start-up, as Compose's start_period of 5 minutes: 5 s x 60.
GATEWAY_STARTUP_FAILURES = 60
# The user both Prometheus images run as (nobody), which must be able to write to the volume.
PROMETHEUS_GROUP = 65534


def gateway_resources(cluster: Cluster) -> dict[str, dict[str, Any]]:
    settings = cluster.manifest.gateway
    files = {
        file_name_of(litellm.CONFIG_FILE): litellm.config_text(
            cluster.models, settings.request_timeout
        ),
        file_name_of(litellm.AUTH_FILE): litellm.auth_source(),
    }
    # One folder, as on Compose: LiteLLM imports the key check from its config's folder, and
    # the check reads the keys file from there. A projected volume puts the Secret's keys file
    # beside the ConfigMap's files and, unlike a subPath mount, follows changes to the Secret.
    sources: list[dict[str, Any]] = [{"configMap": {"name": "gateway-config"}}]
    if settings.keys_file is not None:
        keys = file_name_of(litellm.KEYS_FILE)
        item = {"key": keys, "path": keys}
        sources.append({"secret": {"name": GATEWAY_KEYS_SECRET, "items": [item]}})
    assert {folder_of(litellm.CONFIG_FILE), folder_of(litellm.AUTH_FILE)} == {litellm.CONFIG_DIR}
    assert folder_of(litellm.KEYS_FILE) == litellm.CONFIG_DIR
    required = {litellm.MASTER_KEY_ENV}  # LiteLLM refuses to start without it
    deployment = fragment(
        "gateway-deployment",
        {
            "labels": labels_of("gateway", "gateway"),
            "selector": selector_of("gateway"),
            "annotations": {CONFIG_DIGEST: digest_of(files)},
            # The FastChat image runs the wait script for the web UI already; LiteLLM's
            # official image is not known here to have python3.
            "wait_image": cluster.fastchat_image,
            "wait_command": unexpanded(
                ["python3", f"{SCRIPTS_DIR}/k8s_pod.py", "wait", *_every_model_healthy(cluster)]
            ),
            "wait_mounts": [scripts_mount()],
            "image": gateway_image(cluster.prepared),
            "command": unexpanded(litellm.ENTRYPOINT + litellm.command()),
            "env": env_list(cluster, litellm.environment(), required),
            "port": GATEWAY_PORT,
            "mounts": [{"name": "config", "mountPath": litellm.CONFIG_DIR, "readOnly": True}],
            "health_path": litellm.HEALTH_PATH,
            "startup_failures": GATEWAY_STARTUP_FAILURES,
            "volumes": [{"name": "config", "projected": {"sources": sources}}, scripts_volume()],
        },
    )
    return {
        "gateway-configmap.yaml": configmap_resource("gateway-config", files),
        "gateway-deployment.yaml": deployment,
        "gateway-service.yaml": service_resource("gateway", "gateway", GATEWAY_PORT),
    }


def _monitoring_files(cluster: Cluster) -> dict[str, str]:
    names = metric_names(cluster.prepared.dialect.version)
    return config.config_files(cluster.models, cluster.manifest.device, names)


def prometheus_resources(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Prometheus keeps its samples on a ReadWriteOnce volume, as in Compose's named volume: an
    emptyDir would lose them at every restart or rescheduling, which would make
    monitoring.prometheus.retention meaningless and the runs of an experiment incomparable."""
    manifest = cluster.manifest
    texts = _monitoring_files(cluster)
    files = {
        file_name_of(prometheus.PROMETHEUS_CONFIG): texts["prometheus_config"],
        file_name_of(prometheus.PROMETHEUS_RULES): texts["prometheus_rules"],
    }
    folder = folder_of(prometheus.PROMETHEUS_CONFIG)
    assert folder_of(prometheus.PROMETHEUS_RULES) == folder
    deployment = fragment(
        "prometheus-deployment",
        {
            "labels": labels_of("prometheus", "monitoring"),
            "selector": selector_of("prometheus"),
            "annotations": {CONFIG_DIGEST: digest_of(files)},
            "fs_group": PROMETHEUS_GROUP,
            "image": prometheus_image(cluster.prepared),
            "args": unexpanded(
                prometheus.prometheus_arguments(manifest.monitoring.prometheus.retention)
            ),
            "port": prometheus.PROMETHEUS_PORT,
            "mounts": [
                {"name": "config", "mountPath": folder, "readOnly": True},
                {"name": "data", "mountPath": prometheus.PROMETHEUS_DATA},
            ],
            "ready_path": prometheus.PROMETHEUS_READY,
            "healthy_path": prometheus.PROMETHEUS_HEALTHY,
            "volumes": [
                {"name": "config", "configMap": {"name": "prometheus-config"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "prometheus-data"}},
            ],
        },
    )
    volume = fragment(
        "pvc",
        {
            "name": "prometheus-data",
            "labels": {**PART_OF},
            "access_mode": "ReadWriteOnce",
            "storage_class": None,
            "size": manifest.kubernetes.prometheus_size,
        },
    )
    return {
        "prometheus-config-configmap.yaml": configmap_resource("prometheus-config", files),
        "prometheus-data-pvc.yaml": volume,
        "prometheus-deployment.yaml": deployment,
        "prometheus-service.yaml": service_resource(
            "prometheus", "monitoring", prometheus.PROMETHEUS_PORT
        ),
    }


def grafana_resources(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Grafana's data is an emptyDir: the datasource and the dashboard are provisioned again at
    every start and the samples live in Prometheus, so its own database would keep only
    sessions and preferences, not worth a volume claim."""
    texts = _monitoring_files(cluster)
    home = grafana.GRAFANA_HOME_DASHBOARD
    # One ConfigMap per folder Grafana reads: mounted whole, they follow changes.
    folders = {
        "grafana-datasources": (grafana.GRAFANA_DATASOURCES, texts["grafana_datasources"]),
        "grafana-dashboard-providers": (grafana.GRAFANA_PROVIDERS, texts["grafana_providers"]),
        "grafana-dashboards": (home, texts["grafana_dashboard"]),
    }
    configmaps = {name: {file_name_of(path): text} for name, (path, text) in folders.items()}
    password = {
        "name": cluster.manifest.kubernetes.secret,
        "key": grafana.GRAFANA_PASSWORD_VARIABLE,
        "optional": False,  # Grafana would start with its default password, admin
    }
    deployment = fragment(
        "grafana-deployment",
        {
            "labels": labels_of("grafana", "monitoring"),
            "selector": selector_of("grafana"),
            "annotations": {CONFIG_DIGEST: digest_of(configmaps)},
            "image": cluster.manifest.monitoring.grafana.image,
            "password": password,
            "home_dashboard": home,
            "port": grafana.GRAFANA_PORT,
            "mounts": [
                *(
                    {"name": name, "mountPath": folder_of(path), "readOnly": True}
                    for name, (path, _) in folders.items()
                ),
                {"name": "data", "mountPath": grafana.GRAFANA_DATA},
            ],
            "health_path": grafana.GRAFANA_HEALTH,
            "volumes": [
                *({"name": name, "configMap": {"name": name}} for name in folders),
                {"name": "data", "emptyDir": {}},
            ],
        },
    )
    resources = {
        f"{name}-configmap.yaml": configmap_resource(name, data)
        for name, data in configmaps.items()
    }
    return resources | {
        "grafana-deployment.yaml": deployment,
        "grafana-service.yaml": service_resource("grafana", "monitoring", grafana.GRAFANA_PORT),
    }


def _every_model_healthy(cluster: Cluster) -> list[str]:
    wait = []
    for model in cluster.models:
        wait += ["--healthy", f"http://{model.service}:{VLLM_PORT}/health"]
    return wait
