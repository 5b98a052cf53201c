"""The Kubernetes target's gateway and metrics services: the same generated files as the Compose
target, the resources around them, the images, the Secrets referenced by name and never
rendered, and hostile model names through ConfigMaps and `kubectl kustomize`. (Strict schema
validation and `kubectl kustomize` of the golden folder `gateway-monitoring` run in
test_kubernetes.py with the other goldens.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from arenastack import cli
from arenastack.gateway import litellm as gateway
from arenastack.monitoring.grafana import GRAFANA_DATASOURCES, GRAFANA_PROVIDERS
from arenastack.monitoring.prometheus import prometheus_arguments
from arenastack.render import kubernetes
from arenastack.render.kubernetes.documents import CONFIG_DIGEST
from arenastack.render.pipeline import compose_text, prepare
from tests.conftest import FIXTURES, REPO
from tests.k8s_cases import CASES, render
from tests.unit.render.test_compose import unescape
from tests.unit.render.test_kubernetes import (
    OLDEST_AND_NEWEST,
    container,
    expanded,
    kustomize,
    parsed,
)

CASE = next(c for c in CASES if c.name == "gateway-monitoring")
MANIFEST = CASE.manifest
KEYS = FIXTURES / "gateway" / "keys.yaml"


def documents() -> dict[str, dict[str, Any]]:
    return parsed(render(CASE))


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def with_settings(tmp_path: Path, source: Path = MANIFEST, **sections: Any) -> Path:
    """The source manifest with whole sections replaced, written beside the gateway keys."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data.update(sections)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def build(manifest: Path, gpus: str | None = None) -> dict[str, str]:
    prepared, sharing = kubernetes.prepare(manifest, gpus, None)
    return kubernetes.build(prepared, sharing, manifest.name)


# --- the same files as Compose ---------------------------------------------------------------


def test_generated_files_are_the_compose_targets() -> None:
    """One generator for both targets: every file the gateway, Prometheus and Grafana read is
    the text the compose file carries (after Compose turns `$$` back into `$`)."""
    compose = yaml.safe_load(compose_text(prepare(MANIFEST), REPO / "docker-compose.yml"))
    configs = {name: unescape(config["content"]) for name, config in compose["configs"].items()}
    found = documents()

    def data(name: str) -> dict[str, str]:
        values: dict[str, str] = found[f"{name}-configmap.yaml"]["data"]
        return values

    assert data("gateway") == {
        "config.yaml": configs["gateway_config"],
        "keys_auth.py": configs["gateway_auth"],
    }
    assert data("prometheus-config") == {
        "prometheus.yml": configs["prometheus_config"],
        "arenastack-rules.yml": configs["prometheus_rules"],
    }
    assert data("grafana-datasources") == {"arenastack.yaml": configs["grafana_datasources"]}
    assert data("grafana-dashboard-providers") == {"arenastack.yaml": configs["grafana_providers"]}
    assert data("grafana-dashboards") == {"arenastack.json": configs["grafana_dashboard"]}
    assert data("api-endpoints") == {"api_endpoints.json": configs["api_endpoints"]}
    assert data("arena") == {"arena.json": configs["arena"]}
    # Grafana's own variable reaches it untouched: ConfigMap data is never expanded.
    assert "$__rate_interval" in data("grafana-dashboards")["arenastack.json"]


def test_every_host_the_files_name_is_a_service_of_the_folder() -> None:
    found = documents()
    services = {d["metadata"]["name"] for d in found.values() if d["kind"] == "Service"}
    config = yaml.safe_load(found["gateway-configmap.yaml"]["data"]["config.yaml"])
    for entry in config["model_list"]:
        host, port = (
            entry["litellm_params"]["api_base"].removeprefix("http://").split("/")[0].split(":")
        )
        assert host in services and port == "8000"
    scrape = yaml.safe_load(found["prometheus-config-configmap.yaml"]["data"]["prometheus.yml"])
    targets = [t for c in scrape["scrape_configs"][0]["static_configs"] for t in c["targets"]]
    assert targets == ["llama3-8b:8000", "gemma:8000"]
    assert {t.split(":")[0] for t in targets} <= services
    datasources = yaml.safe_load(
        found["grafana-datasources-configmap.yaml"]["data"]["arenastack.yaml"]
    )
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    assert {"gateway", "prometheus", "grafana"} <= services
    ports = {
        d["metadata"]["name"]: d["spec"]["ports"][0]["port"]
        for d in found.values()
        if d["kind"] == "Service"
    }
    assert (ports["gateway"], ports["prometheus"], ports["grafana"]) == (4000, 9090, 3000)


# --- the gateway -----------------------------------------------------------------------------


def test_gateway_runs_litellm_on_its_config_after_the_models() -> None:
    found = documents()
    deployment = found["gateway-deployment.yaml"]
    litellm = container(deployment, "gateway")
    # Built here (gateway.build), so pushed to and pulled from the manifest's registry.
    assert litellm["image"] == "registry.example.com/arena/arenastack/litellm:1.108.7"
    assert litellm["command"] == [
        "litellm", "--config", "/etc/arenastack/gateway/config.yaml",
        "--host", "0.0.0.0", "--port", "4000", "--keepalive_timeout", "120",
    ]  # fmt: skip
    env = {e["name"]: e for e in litellm["env"]}
    assert env["LITELLM_MASTER_KEY"] == {
        "name": "LITELLM_MASTER_KEY",
        "valueFrom": {
            "secretKeyRef": {
                "name": "arena-secrets",
                "key": "LITELLM_MASTER_KEY",
                "optional": False,
            }
        },
    }, "the manifest's Secret, by name, required: LiteLLM does not start without it"
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"]["value"] == "True"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert litellm[probe]["httpGet"] == {"path": "/health/liveliness", "port": "http"}
    startup = litellm["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 300, "Compose's 5 minutes"
    # As Compose's depends_on: every model healthy first.
    (wait,) = pod(deployment)["initContainers"]
    assert wait["command"][3:] == [
        "--healthy", "http://llama3-8b:8000/health", "--healthy", "http://gemma:8000/health",
    ]  # fmt: skip
    assert {"name": "config", "mountPath": gateway.CONFIG_DIR, "readOnly": True} in litellm[
        "volumeMounts"
    ]


def test_keys_file_comes_from_the_users_secret_beside_the_config() -> None:
    deployment = documents()["gateway-deployment.yaml"]
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    assert volumes["config"]["projected"]["sources"] == [
        {"configMap": {"name": "gateway-config"}},
        {"secret": {"name": "gateway-keys", "items": [{"key": "keys.yaml", "path": "keys.yaml"}]}},
    ]
    # Mounted where the key check looks for it on Compose too, beside the config.
    litellm = container(deployment, "gateway")
    (mount,) = [m for m in litellm["volumeMounts"] if m["name"] == "config"]
    assert f"{mount['mountPath']}/keys.yaml" == gateway.KEYS_FILE


def test_render_says_how_to_create_the_keys_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([str(MANIFEST), "--target", "kubernetes", "-o", str(tmp_path / "k")]) == 0
    captured = capsys.readouterr()
    (line,) = [e for e in captured.err.splitlines() if e.startswith("warning: gateway.keys_file")]
    assert f"kubectl create secret generic gateway-keys --from-file=keys.yaml={KEYS}" in line
    assert (
        "images the cluster pulls: registry.example.com/arena/arenastack/vllm:v0.8.2-sm90, "
        "registry.example.com/arena/arenastack/fastchat:0.2.36, "
        "registry.example.com/arena/arenastack/litellm:1.108.7, prom/prometheus:v3.5.0, "
        "grafana/grafana:12.1.1"
    ) in captured.out


def test_official_images_are_pulled_as_named_and_built_ones_from_the_registry(
    tmp_path: Path,
) -> None:
    manifest = with_settings(
        tmp_path,
        gateway={"enabled": True},
        monitoring={"enabled": True, "prometheus": {"source": "debian"},
                    "grafana": {"enabled": False}},
    )  # fmt: skip
    found = parsed(build(manifest))
    litellm = container(found["gateway-deployment.yaml"], "gateway")
    assert litellm["image"] == gateway.OFFICIAL_IMAGE == "ghcr.io/berriai/litellm:main-v1.108.7"
    sources = pod(found["gateway-deployment.yaml"])["volumes"][0]["projected"]["sources"]
    assert sources == [{"configMap": {"name": "gateway-config"}}], "no keys file, no keys Secret"
    prometheus = container(found["prometheus-deployment.yaml"], "prometheus")
    assert prometheus["image"] == "registry.example.com/arena/arenastack/prometheus:bookworm"
    assert not [name for name in found if name.startswith("grafana")]
    prepared, _ = kubernetes.prepare(manifest, None, None)
    assert kubernetes.images_pulled(prepared)[2:] == [gateway.OFFICIAL_IMAGE, prometheus["image"]]


def test_nothing_of_either_unless_enabled() -> None:
    for case in CASES:
        if case is CASE:
            continue
        names = render(case)
        assert not [n for n in names if n.startswith(("gateway", "prometheus", "grafana"))]


# --- Prometheus and Grafana ------------------------------------------------------------------


def test_prometheus_keeps_its_samples_on_a_claim_it_can_write() -> None:
    found = documents()
    deployment = found["prometheus-deployment.yaml"]
    prometheus = container(deployment, "prometheus")
    assert prometheus["image"] == "prom/prometheus:v3.5.0", "official: pulled as named"
    assert prometheus["args"] == prometheus_arguments("30d")
    assert "command" not in prometheus, "the image's entrypoint is the prometheus binary"
    assert prometheus["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert prometheus["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    mounts = {m["mountPath"]: m["name"] for m in prometheus["volumeMounts"]}
    assert mounts == {"/etc/prometheus": "config", "/prometheus": "data"}
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    assert volumes["data"] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": "prometheus-data"},
    }
    assert pod(deployment)["securityContext"] == {"fsGroup": 65534}, "the images run as nobody"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "one pod on the RWO volume"
    claim = found["prometheus-data-pvc.yaml"]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert claim["resources"]["requests"]["storage"] == "20Gi"


def test_grafana_reads_the_provisioned_files_and_the_password_by_name() -> None:
    deployment = documents()["grafana-deployment.yaml"]
    grafana = container(deployment, "grafana")
    assert grafana["image"] == "grafana/grafana:12.1.1"
    env = {e["name"]: e for e in grafana["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {
            "name": "arena-secrets",
            "key": "GRAFANA_ADMIN_PASSWORD",
            "optional": False,
        }
    }
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in grafana["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    # Each file Compose mounts is at the same path here, from its ConfigMap's key.
    for path, configmap in [
        (GRAFANA_DATASOURCES, "grafana-datasources"),
        (GRAFANA_PROVIDERS, "grafana-dashboard-providers"),
        (home, "grafana-dashboards"),
    ]:
        folder, name = path.rsplit("/", 1)
        assert volumes[mounts[folder]]["configMap"]["name"] == configmap
        assert name in documents()[f"{configmap}-configmap.yaml"]["data"]
    assert volumes[mounts["/var/lib/grafana"]]["emptyDir"] == {}


def test_config_digest_follows_the_generated_files(tmp_path: Path) -> None:
    def digests(files: dict[str, str]) -> dict[str, str]:
        return {
            name: d["spec"]["template"]["metadata"]["annotations"][CONFIG_DIGEST]
            for name, d in parsed(files).items()
            if name in ("gateway-deployment.yaml", "prometheus-deployment.yaml",
                        "grafana-deployment.yaml", "webui-deployment.yaml")
        }  # fmt: skip

    before = digests(render(CASE))
    assert digests(render(CASE)) == before
    data = yaml.safe_load(MANIFEST.read_text())
    data["models"]["gemma"]["display_name"] = "Gemma 7B"
    data["gateway"]["keys_file"] = str(KEYS)
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(yaml.safe_dump(data), encoding="utf-8")
    after = digests(build(renamed))
    assert len(before) == 4
    assert all(after[name] != before[name] for name in before), "each file set names the model"


# --- no secret is rendered -------------------------------------------------------------------


def test_no_secret_value_reaches_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = ["sk-master-value-8c1e", "grafana-password-5d2a", "hf_token_value_77f1"]
    for name, value in zip(
        ("LITELLM_MASTER_KEY", "GRAFANA_ADMIN_PASSWORD", "HF_TOKEN"), values, strict=True
    ):
        monkeypatch.setenv(name, value)
    (tmp_path / ".env").write_text(f"LITELLM_MASTER_KEY={values[0]}\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main([str(MANIFEST), "--target", "kubernetes", "-o", "k"]) == 0
    texts = [p.read_text(encoding="utf-8") for p in (tmp_path / "k").iterdir()]
    user_keys = list(yaml.safe_load(KEYS.read_text()).values())
    for secret in values + user_keys:
        assert not any(secret in text for text in texts), secret
    kinds = {yaml.safe_load(text)["kind"] for text in texts}
    assert "Secret" not in kinds, "the user creates the Secrets"


# --- hostile model names ---------------------------------------------------------------------


def test_hostile_names_reach_the_gateway_and_prometheus_verbatim(tmp_path: Path) -> None:
    """Quotes, `$`, newlines, YAML and Jinja syntax, line separators in served and display
    names arrive in the gateway's config and the scrape config as written, in the files and in
    what `kubectl kustomize` builds from them. (U+0085 is refused for this target, see
    test_kubernetes.py.)"""
    text = (FIXTURES / "manifests/hostile.yaml").read_text(encoding="utf-8")
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(text.replace(" \\N nel", ""), encoding="utf-8")
    manifest = with_settings(
        tmp_path, hostile, gateway={"enabled": True}, monitoring={"enabled": True}
    )
    models = yaml.safe_load(manifest.read_text(encoding="utf-8"))["models"]
    served = [m["served_model_name"] for m in models.values()]
    displays = [m["display_name"] for m in models.values()]
    assert any("\n" in name for name in served) and any("$" in name for name in displays)
    prepared, sharing = kubernetes.prepare(manifest, "1x80@9.0", "hami")
    files = kubernetes.build(prepared, sharing, "hostile.yaml")
    written = [d for name, d in parsed(files).items() if name != "kustomization.yaml"]
    for found in (written, kustomize(files, tmp_path / "built")):
        by_name = {(d["kind"], d["metadata"]["name"]): d for d in found}
        data = by_name[("ConfigMap", "gateway-config")]["data"]
        assert data["config.yaml"] == gateway.config_text(prepared.plan.models, 600)
        config = yaml.safe_load(data["config.yaml"])
        assert [e["model_name"] for e in config["model_list"]] == served
        assert [e["litellm_params"]["model"] for e in config["model_list"]] == [
            f"hosted_vllm/{name}" for name in served
        ]
        assert config["router_settings"]["model_group_alias"] == dict(
            zip(displays, served, strict=True)
        )
        assert set(config) == {
            "model_list", "router_settings", "litellm_settings", "general_settings"
        }, "nothing a name holds became a key of its own"  # fmt: skip
        scrape = yaml.safe_load(
            by_name[("ConfigMap", "prometheus-config")]["data"]["prometheus.yml"]
        )
        labels = [
            c["labels"]["display_name"] for c in scrape["scrape_configs"][0]["static_configs"]
        ]
        assert labels == displays
        dashboard = json.loads(
            by_name[("ConfigMap", "grafana-dashboards")]["data"]["arenastack.json"]
        )
        titles = [p["title"] for p in dashboard["panels"]]
        assert all(any(title.startswith(f"{name}: ") for title in titles) for name in displays)
        litellm = container(by_name[("Deployment", "gateway")], "gateway")
        assert [
            expanded(word) for word in litellm["command"]
        ] == gateway.ENTRYPOINT + gateway.command()
        assert len(found) == len(by_name) == len(files) - 1, "no string added a resource"
    for document in written:
        for version in OLDEST_AND_NEWEST:
            kubernetes_validate.validate(document, version, strict=True)
