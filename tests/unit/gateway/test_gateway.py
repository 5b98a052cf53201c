"""The gateway (LiteLLM proxy): its generated config, the compose service, the key warning, the
per-user key check, and hostile model names through the real Compose binary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from arenastack import cli
from arenastack.gateway import checks as gateway_checks
from arenastack.gateway import keys_auth as gateway_auth
from arenastack.gateway import litellm
from arenastack.render.pipeline import compose_text, prepare
from tests.cases import CASES, OUTPUT, render
from tests.conftest import FIXTURES, REPO
from tests.unit.render.test_compose import COMPOSE, unescape

GATEWAY_CASE = next(c for c in CASES if c.name == "gateway")
HOSTILE = FIXTURES / "manifests" / "hostile.yaml"


def document_of(text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def litellm_config(document: dict[str, Any]) -> dict[str, Any]:
    """The config as LiteLLM reads it: Compose turns `$$` back into `$`, then yaml.safe_load."""
    content = unescape(document["configs"]["gateway_config"]["content"])
    config: dict[str, Any] = yaml.safe_load(content)
    return config


@pytest.fixture(autouse=True)
def no_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(litellm.MASTER_KEY_ENV, raising=False)


# --- config generation ---------------------------------------------------------------------


def test_every_model_is_routed_by_served_name_to_its_own_server() -> None:
    config = litellm_config(document_of(render(GATEWAY_CASE)))
    entries = {entry["model_name"]: entry for entry in config["model_list"]}
    assert list(entries) == ["Qwen/Qwen2.5-0.5B-Instruct", "smol"]
    small = entries["Qwen/Qwen2.5-0.5B-Instruct"]["litellm_params"]
    assert small["model"] == "hosted_vllm/Qwen/Qwen2.5-0.5B-Instruct"
    assert small["api_base"] == "http://small:8000/v1"
    assert entries["smol"]["litellm_params"]["api_base"] == "http://tiny:8000/v1"
    # The service name is the deployment id /health reports (operate/gateway_health.py); its
    # probe of each model is one token, and bounded.
    assert entries["smol"]["model_info"] == {
        "id": "tiny",
        "health_check_max_tokens": 1,
        "health_check_timeout": litellm.HEALTH_CHECK_TIMEOUT_S,
    }
    # Bounded failure: the manifest's timeout, and no retries that would stretch it.
    for entry in entries.values():
        params = entry["litellm_params"]
        assert params["timeout"] == params["stream_timeout"] == 90
        assert params["max_retries"] == 0
    assert config["router_settings"]["num_retries"] == 0
    assert config["litellm_settings"] == {"num_retries": 0, "request_timeout": 90}


def test_display_names_are_aliases_unless_equal_to_the_served_name() -> None:
    config = litellm_config(document_of(render(GATEWAY_CASE)))
    assert config["router_settings"]["model_group_alias"] == {
        "Qwen 0.5B": "Qwen/Qwen2.5-0.5B-Instruct"
    }


def test_the_master_key_is_read_by_name_and_keys_are_checked_by_the_mounted_module() -> None:
    config = litellm_config(document_of(render(GATEWAY_CASE)))
    assert config["general_settings"] == {
        "master_key": "os.environ/LITELLM_MASTER_KEY",
        "custom_auth": "keys_auth.user_api_key_auth",
    }


def test_gateway_service() -> None:
    document = document_of(render(GATEWAY_CASE))
    service = document["services"]["gateway"]
    assert service["image"] == litellm.BUILT_IMAGE
    assert service["build"]["context"] == "./images/litellm"
    assert service["build"]["args"] == {"BASE_IMAGE": "arenastack/base:bookworm"}
    assert service["pull_policy"] == "never"
    assert service["ports"] == [
        {"target": 4000, "published": "14000", "host_ip": "0.0.0.0", "protocol": "tcp"}
    ]
    assert service["environment"]["LITELLM_MASTER_KEY"] is None, "passed by name only"
    assert service["depends_on"] == {
        "small": {"condition": "service_healthy"},
        "tiny": {"condition": "service_healthy"},
    }
    assert service["healthcheck"]["test"][-1] == "http://127.0.0.1:4000/health/liveliness"
    assert {c["target"]: c["source"] for c in service["configs"]} == {
        "/etc/arenastack/gateway/config.yaml": "gateway_config",
        "/etc/arenastack/gateway/keys_auth.py": "gateway_auth",
    }
    assert service["volumes"] == [
        {
            "type": "bind",
            "source": "./tests/fixtures/gateway/keys.yaml",
            "target": "/etc/arenastack/gateway/keys.yaml",
            "read_only": True,
        }
    ]
    auth = document["configs"]["gateway_auth"]["content"]
    assert unescape(auth) == litellm.auth_source()


def write_manifest(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def seed_with(tmp_path: Path, **gateway_settings: Any) -> Path:
    data = yaml.safe_load((REPO / "compose/models.yaml").read_text())
    data["gateway"] = gateway_settings
    return write_manifest(tmp_path, data)


def test_defaults_use_the_official_image_on_localhost_without_keys(tmp_path: Path) -> None:
    prepared = prepare(seed_with(tmp_path, enabled=True), "1x80@8.0")
    document = document_of(compose_text(prepared, OUTPUT))
    service = document["services"]["gateway"]
    assert service["image"] == "ghcr.io/berriai/litellm:main-v1.108.7"
    assert service["pull_policy"] == "missing" and "build" not in service
    assert service["ports"][0]["host_ip"] == "127.0.0.1"
    assert service["ports"][0]["published"] == "4000"
    assert "volumes" not in service, "no keys file"
    assert "/etc/arenastack/gateway/keys_auth.py" in {c["target"] for c in service["configs"]}
    config = litellm_config(document)
    assert config["general_settings"]["custom_auth"] == "keys_auth.user_api_key_auth"
    assert config["litellm_settings"]["request_timeout"] == 600
    # The seed's five models, each under its hub id, each with its display name as an alias.
    assert len(config["model_list"]) == 5
    assert config["router_settings"]["model_group_alias"]["Phi 3 18K"] == (
        "microsoft/Phi-3-mini-128k-instruct"
    )


def test_no_gateway_unless_enabled(tmp_path: Path) -> None:
    prepared = prepare(seed_with(tmp_path, enabled=False, port=7860), "1x80@8.0")
    document = document_of(compose_text(prepared, OUTPUT))
    assert "gateway" not in document["services"]
    assert "gateway_config" not in document["configs"]


def test_version_pins_agree() -> None:
    requirements = (REPO / "images/litellm/requirements.txt").read_text()
    assert f"litellm[proxy]=={litellm.LITELLM_VERSION}\n" in requirements
    assert litellm.OFFICIAL_IMAGE.endswith(litellm.LITELLM_VERSION)
    assert litellm.BUILT_IMAGE.endswith(litellm.LITELLM_VERSION)


# --- hostile model names -------------------------------------------------------------------


def hostile_with_gateway(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    data = yaml.safe_load(HOSTILE.read_text())
    data["gateway"] = {"enabled": True}
    return write_manifest(tmp_path, data), data


def test_hostile_names_round_trip_into_the_gateway_config(tmp_path: Path) -> None:
    manifest, data = hostile_with_gateway(tmp_path)
    text = compose_text(prepare(manifest, "1x80@9.0"), OUTPUT)
    config = litellm_config(document_of(text))
    served = [model["served_model_name"] for model in data["models"].values()]
    displays = [model["display_name"] for model in data["models"].values()]
    assert [entry["model_name"] for entry in config["model_list"]] == served
    assert [entry["litellm_params"]["model"] for entry in config["model_list"]] == [
        f"hosted_vllm/{name}" for name in served
    ]
    assert config["router_settings"]["model_group_alias"] == dict(
        zip(displays, served, strict=True)
    )
    # Nothing a name holds became a key of its own.
    assert set(config) == {"model_list", "router_settings", "litellm_settings", "general_settings"}
    assert all(
        set(entry) == {"model_name", "litellm_params", "model_info"}
        for entry in config["model_list"]
    )


def test_compose_binary_reads_hostile_names_into_the_gateway_config(tmp_path: Path) -> None:
    """The real Compose parser: the config file the container gets holds the names as written."""
    manifest, data = hostile_with_gateway(tmp_path)
    file = tmp_path / "docker-compose.yml"
    file.write_text(compose_text(prepare(manifest, "1x80@9.0"), OUTPUT), encoding="utf-8")
    result = subprocess.run(
        [str(COMPOSE), "-f", str(file), "--project-directory", str(REPO), "config",
         "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    parsed = json.loads(result.stdout)
    config = litellm_config(parsed)
    assert [entry["model_name"] for entry in config["model_list"]] == [
        model["served_model_name"] for model in data["models"].values()
    ]
    assert set(config["router_settings"]["model_group_alias"]) == {
        model["display_name"] for model in data["models"].values()
    }
    assert parsed["services"]["gateway"]["configs"][0]["target"] == litellm.CONFIG_FILE


# --- the master key ------------------------------------------------------------------------


def warning_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "gateway" in line]


def test_rendering_without_a_key_warns_how_to_set_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "docker-compose.yml"
    output.parent.mkdir()
    assert (
        cli.main([str(seed_with(tmp_path, enabled=True)), "-o", str(output), "--gpus", "1x80@8.0"])
        == 0
    )
    (line,) = warning_lines(capsys)
    assert line.startswith("warning: gateway.enabled: LITELLM_MASTER_KEY is set neither")
    assert (
        f'echo "LITELLM_MASTER_KEY=sk-$(openssl rand -hex 32)" >> {output.parent / ".env"}' in line
    )
    assert output.is_file(), "a warning, not an error"


@pytest.mark.parametrize("where", ["environment", ".env", "export in .env"])
def test_a_key_is_never_written_and_silences_the_warning(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-secret-value-7f3a9"
    output = tmp_path / "docker-compose.yml"
    if where == "environment":
        monkeypatch.setenv("LITELLM_MASTER_KEY", secret)
    else:
        prefix = "export " if where.startswith("export") else ""
        (tmp_path / ".env").write_text(f"HF_TOKEN=x\n{prefix}LITELLM_MASTER_KEY='{secret}'\n")
    manifest = seed_with(tmp_path, enabled=True)
    assert cli.main([str(manifest), "-o", str(output), "--gpus", "1x80@8.0"]) == 0
    assert warning_lines(capsys) == []
    assert secret not in output.read_text()


@pytest.mark.parametrize(
    "line",
    ["LITELLM_MASTER_KEY=", "LITELLM_MASTER_KEY=''", "# LITELLM_MASTER_KEY=sk-x", "OTHER=sk-x"],
)
def test_an_empty_or_commented_key_still_warns(line: str, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(line + "\n")
    manifest = prepare(seed_with(tmp_path, enabled=True), "1x80@8.0").manifest
    assert [w.path for w in gateway_checks.warnings(manifest, env_file)] == ["gateway.enabled"]


def test_no_warning_without_a_gateway(tmp_path: Path) -> None:
    manifest = prepare(seed_with(tmp_path, enabled=False), "1x80@8.0").manifest
    assert gateway_checks.warnings(manifest, tmp_path / ".env") == []


# --- per-user keys (the module LiteLLM runs as custom_auth) ---------------------------------


def test_keys_file_users_and_the_master_key() -> None:
    users = gateway_auth.users_by_key(FIXTURES / "gateway" / "keys.yaml")
    assert users == {"sk-test-alice-0000": "alice", "sk-test-bob-1111": "bob"}
    master = "sk-master-123"
    assert gateway_auth.who("sk-test-bob-1111", master, users) == ("bob", False)
    assert gateway_auth.who("Bearer sk-test-alice-0000", master, users) == ("alice", False)
    assert gateway_auth.who(master, master, users) == ("admin", True)
    for wrong in ["", "Bearer ", "sk-test-bob-111", "sk-master-1234", "alice"]:
        assert gateway_auth.who(wrong, master, users) is None, wrong
    assert gateway_auth.who("", None, {}) is None
    assert gateway_auth.who("anything", None, {}) is None, "no master key accepts nothing"


def test_keys_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("alice: sk-a\n")
    assert gateway_auth.users_by_key(path) == {"sk-a": "alice"}
    path.write_text("alice: sk-a\ncarol: sk-carol\n")
    assert gateway_auth.users_by_key(path) == {"sk-a": "alice", "sk-carol": "carol"}
    path.unlink()
    assert gateway_auth.users_by_key(path) == {}
