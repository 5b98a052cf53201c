"""Prometheus: its scrape config over every model server's `/metrics`, each target labelled with
where the plan put its model, and a recording rule per model for the memory it was given."""

from __future__ import annotations

from typing import Any

from arenastack.core.services import RESIDENCY_PORT, RESIDENCY_SERVICE, VLLM_PORT
from arenastack.manifest import Model

SCRAPE_INTERVAL = "5s"


JOB = "vllm"
RESIDENCY_JOB = "residency"


PROMETHEUS_PORT = 9090


PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"


PROMETHEUS_RULES = "/etc/prometheus/arenastack-rules.yml"


PROMETHEUS_DATA = "/prometheus"


# 503 until the TSDB is loaded; /-/healthy answers as soon as the process serves.
PROMETHEUS_READY = "/-/ready"


PROMETHEUS_HEALTHY = "/-/healthy"


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


def prometheus_arguments(retention: str) -> list[str]:
    """The flags after the entrypoint, which is the prometheus binary in both images."""
    return [
        f"--config.file={PROMETHEUS_CONFIG}",
        f"--storage.tsdb.path={PROMETHEUS_DATA}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address=0.0.0.0:{PROMETHEUS_PORT}",
    ]


def prometheus_config(models: list[Model], device: str, residency: bool = False) -> dict[str, Any]:
    """`residency`: also scrape the residency service (wakes, sleeps, who is awake)."""
    jobs: list[dict[str, Any]] = [
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
    ]
    if residency:
        target = f"{RESIDENCY_SERVICE}:{RESIDENCY_PORT}"
        jobs.append({"job_name": RESIDENCY_JOB, "static_configs": [{"targets": [target]}]})
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [PROMETHEUS_RULES],
        "scrape_configs": jobs,
    }


def memory_share_metric(device: str) -> str:
    return (
        "arenastack:cpu_kvcache_space_gib" if device == "cpu" else "arenastack:gpu_memory_fraction"
    )


KV_CACHE_BYTES = "arenastack:kv_cache_bytes"


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
        if device == "cuda" and model.kv_cache_memory_bytes is not None:
            # Its KV cache in bytes (exact, or the elastic pool it may fill): vLLM's usage is a
            # share of it.
            rules.append(
                {
                    "record": KV_CACHE_BYTES,
                    "expr": f"vector({model.kv_cache_memory_bytes})",
                    "labels": {"job": JOB, **target_labels(model, device)},
                }
            )
    return {"groups": [{"name": "arenastack-plan", "rules": rules}]}
