"""Residency in the manifest, the plan and the compose file: what is refused (each naming its
field), the GPU and host checks, the start-up waves and the residency service's wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from arenastack.core.problems import ManifestError
from arenastack.plan.planner import GIB, resident_bytes
from arenastack.plan.residency import host_memory_gib
from arenastack.render import residency
from arenastack.render.pipeline import compose_text, prepare
from tests.unit.residency.fakes import FakeVllm, Monitor, Served

H200 = "1x140.4@9.0"
EIGHT_B = {
    "qwen3": {"model": "Qwen/Qwen3-8B"},
    "llama31": {"model": "meta-llama/Llama-3.1-8B-Instruct"},
    "gemma": {"model": "google/gemma-1.1-7b-it"},
    "llama3": {"model": "meta-llama/Meta-Llama-3-8B-Instruct"},
}


def manifest(tmp_path: Path, models: dict[str, Any] | None = None, **more: Any) -> Path:
    data: dict[str, Any] = {
        "images": {"vllm": {"source": "wheel", "vllm_ref": "v0.24.0"}},
        "planner": {"gpu_budget": 0.42},
        "residency": {"awake_per_gpu": 2},
        "defaults": {"gpu": 0, "max_model_len": 8192},
        "models": models or EIGHT_B,
    }
    for key, value in more.items():
        if value is None:
            data.pop(key, None)
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems(path: Path, gpus: str | None = H200, host: float | None = 128) -> list[str]:
    with pytest.raises(ManifestError) as error:
        prepare(path, gpus, host_memory_gib=host)
    return [str(p) for p in error.value.problems]


def document(path: Path, gpus: str = H200, host: float = 128) -> dict[str, Any]:
    prepared = prepare(path, gpus, host_memory_gib=host)
    parsed: dict[str, Any] = yaml.safe_load(compose_text(prepared, path.parent / "c.yml"))
    return parsed


# --- what is refused --------------------------------------------------------------------------


def test_the_cpu_device_is_refused_naming_residency(tmp_path: Path) -> None:
    path = manifest(tmp_path, {"a": {"model": "Qwen/Qwen3-8B"}}, device="cpu", images=None)
    found = problems(path, gpus=None)
    assert any(p.startswith("residency:") and "device: cpu" in p for p in found), found


def test_a_ref_without_sleep_mode_is_refused(tmp_path: Path) -> None:
    found = problems(manifest(tmp_path, images={"vllm": {"source": "git", "vllm_ref": "v0.8.0"}}))
    assert any(
        p.startswith("residency:") and "--enable-sleep-mode only exists from vLLM v0.8.2" in p
        for p in found
    ), found


def test_sleep_level_2_is_refused_because_wake_up_does_not_reload_weights(tmp_path: Path) -> None:
    found = problems(manifest(tmp_path, residency={"awake_per_gpu": 2, "sleep_level": 2}))
    assert any(p.startswith("residency.sleep_level:") and "use 1" in p for p in found), found


def test_elastic_kv_cache_is_refused(tmp_path: Path) -> None:
    found = problems(manifest(tmp_path, planner={"kv_cache": "elastic"}))
    assert any(p.startswith("residency:") and "'elastic'" in p for p in found), found


def test_a_published_model_port_is_refused_for_its_dev_endpoints(tmp_path: Path) -> None:
    models = {**EIGHT_B, "qwen3": {"model": "Qwen/Qwen3-8B", "port": 8001}}
    found = problems(manifest(tmp_path, models))
    assert any(p.startswith("models.qwen3.port:") and "/wake_up" in p for p in found), found


def test_auto_placement_and_tensor_parallel_are_refused(tmp_path: Path) -> None:
    models = {
        **EIGHT_B,
        "qwen3": {"model": "Qwen/Qwen3-8B", "gpu": "auto"},
        "llama31": {"model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": [0, 1]},
    }
    found = problems(manifest(tmp_path, models), gpus="2x140.4@9.0")
    assert any(p.startswith("models.qwen3.gpu:") and "set the GPU" in p for p in found), found
    assert any(p.startswith("models.llama31.gpu:") and "one GPU" in p for p in found), found


def test_a_fraction_set_by_hand_is_refused(tmp_path: Path) -> None:
    models = {**EIGHT_B, "qwen3": {"model": "Qwen/Qwen3-8B", "gpu_memory_utilization": 0.2}}
    found = problems(manifest(tmp_path, models))
    assert any(
        p.startswith("models.qwen3.gpu_memory_utilization:") and "sized in bytes" in p
        for p in found
    ), found


def test_one_awake_per_gpu_is_refused_for_an_arena_pair_on_one_gpu(tmp_path: Path) -> None:
    path = manifest(tmp_path, residency={"awake_per_gpu": 1})
    found = problems(path)
    assert any(
        p.startswith("residency.awake_per_gpu:") and "qwen3, llama31, gemma, llama3 on GPU 0" in p
        for p in found
    ), found
    # Direct chat only: one model at a time is all a request needs.
    single = manifest(tmp_path, residency={"awake_per_gpu": 1}, webui={"mode": "single"})
    document(single)


@pytest.mark.parametrize("sharing", ["whole", "hami"])
def test_kubernetes_refuses_residency_naming_the_block_and_why(
    tmp_path: Path, sharing: str
) -> None:
    """Whole GPUs leave nothing to share; HAMi slices are reserved whether a model sleeps or
    not: on neither can more models than fit awake hold a GPU."""
    from arenastack.render.kubernetes.checks import prepare as prepare_cluster

    with pytest.raises(ManifestError) as error:
        prepare_cluster(manifest(tmp_path), H200, sharing, host_memory_gib=128)
    found = [str(p) for p in error.value.problems if str(p).startswith("residency:")]
    assert len(found) == 1 and f"gpu_sharing {sharing!r}" in found[0], found
    assert "nvidia.com/gpumem" in found[0] and "Compose" in found[0]


# --- the GPU and the host ---------------------------------------------------------------------


def test_the_gpu_holds_the_largest_awake_plus_the_sleeping_residue(tmp_path: Path) -> None:
    plan = prepare(manifest(tmp_path), H200, host_memory_gib=128).plan
    entries = plan.on_gpu(0)
    held = resident_bytes(entries, 2)
    by_size = sorted(entries, key=lambda e: -(e.footprint_bytes or 0))
    awake, asleep = by_size[:2], by_size[2:]
    for entry in awake:
        assert held[entry.model.service] == entry.footprint_bytes
    for entry in asleep:
        assert entry.asleep_bytes is not None
        assert held[entry.model.service] == entry.asleep_bytes
        assert 1 * GIB < entry.asleep_bytes < (entry.footprint_bytes or 0) / 4
    assert plan.budget_bytes is not None
    assert sum(held.values()) <= plan.budget_bytes[0]
    # Three awake would not fit: the budget holds two.
    three = sum(e.footprint_bytes or 0 for e in by_size[:3]) + (by_size[3].asleep_bytes or 0)
    assert three > plan.budget_bytes[0]


def test_a_gpu_short_of_room_names_its_awake_and_sleeping_models(tmp_path: Path) -> None:
    found = problems(manifest(tmp_path, residency={"awake_per_gpu": 3}))
    (problem,) = [p for p in found if "does not hold" in p]
    assert problem.startswith("defaults.gpu: GPU 0 does not hold 3 awake and the others asleep")
    assert " asleep" in problem and "short by" in problem and "residency.awake_per_gpu" in problem


def test_the_sleeping_weights_must_fit_in_host_memory(tmp_path: Path) -> None:
    found = problems(manifest(tmp_path), host=40)
    (problem,) = [p for p in found if "host memory" in p]
    assert problem.startswith("residency: the sleeping weights do not fit in host memory")
    assert "= 61.1 GiB, more than 0.9 x 40.0 GiB = 36.0 GiB" in problem
    document(manifest(tmp_path), host=80)  # 61.1 GiB fits 72


def test_host_memory_is_read_from_meminfo_unless_declared(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32768000 kB\nMemFree:  1 kB\n")
    assert host_memory_gib(None, meminfo) == pytest.approx(32768000 / 2**20)
    assert host_memory_gib(12.5, meminfo) == 12.5
    assert host_memory_gib(None, tmp_path / "absent") is None


# --- the compose file -------------------------------------------------------------------------


def test_waves_fill_the_last_one_first_and_each_waits_for_the_one_before(tmp_path: Path) -> None:
    llama3 = "meta-llama/Meta-Llama-3-8B-Instruct"
    models: dict[str, Any] = {
        f"m{i}": {"model": llama3, "served_model_name": f"m{i}"} for i in range(5)
    }
    models["m5"] = {"model": llama3, "served_model_name": "m5", "gpu": 1}
    path = manifest(tmp_path, models, planner={"gpu_budget": 0.5})
    services = document(path, gpus="2x140.4@9.0")["services"]
    config = json.loads(document(path, gpus="2x140.4@9.0")["configs"]["residency"]["content"])
    waves = {name: config["models"][name]["wave"] for name in models}
    assert waves == {"m0": 0, "m1": 1, "m2": 1, "m3": 2, "m4": 2, "m5": 0}
    waits = {n: set(services[n]["depends_on"]) - {"fetch-models"} for n in models}
    assert waits == {
        "m0": set(),
        "m1": {"m0"},
        "m2": {"m0"},
        "m3": {"m1", "m2"},
        "m4": {"m1", "m2"},
        "m5": set(),
    }
    for name in models:
        test = services[name]["healthcheck"]["test"]
        slept_first = name in ("m0", "m1", "m2")
        assert (residency.HAS_SLEPT in test) is slept_first, name


def test_the_servers_sleep_behind_the_residency_service_with_no_port(tmp_path: Path) -> None:
    path = manifest(tmp_path, gateway={"enabled": True})
    parsed = document(path)
    services = parsed["services"]
    for name in EIGHT_B:
        server = services[name]
        assert "--enable-sleep-mode" in server["command"]
        assert server["environment"]["VLLM_SERVER_DEV_MODE"] == "1"
        assert "ports" not in server
    service = services["residency"]
    assert service["command"][:3] == ["python3", "-m", "arenastack.residency"]
    assert service["image"] == services["controller"]["image"]
    assert "ports" not in service
    assert service["configs"] == [{"source": "residency", "target": residency.CONFIG_FILE}]
    config = json.loads(parsed["configs"]["residency"]["content"])
    assert config["awake_per_gpu"] == 2 and config["sleep_level"] == 1
    assert config["models"]["gemma"] == {
        "url": "http://gemma:8000",
        "gpu": "0",
        "names": ["google/gemma-1.1-7b-it", "gemma"],
        "wave": 1,
    }
    endpoints = json.loads(parsed["configs"]["api_endpoints"]["content"])
    assert {e["api_base"] for e in endpoints.values()} == {"http://residency:8000/v1"}
    gateway = yaml.safe_load(parsed["configs"]["gateway_config"]["content"])
    bases = {m["litellm_params"]["api_base"] for m in gateway["model_list"]}
    assert bases == {"http://residency:8000/v1"}


def test_the_residency_port_is_published_only_when_asked(tmp_path: Path) -> None:
    path = manifest(tmp_path, residency={"awake_per_gpu": 2, "port": 8300})
    (port,) = document(path)["services"]["residency"]["ports"]
    assert port == {"target": 8000, "published": "8300", "host_ip": "127.0.0.1", "protocol": "tcp"}


def test_the_residency_config_is_what_the_service_reads(tmp_path: Path) -> None:
    from arenastack.residency.config import parse

    content = document(manifest(tmp_path))["configs"]["residency"]["content"]
    config = parse(json.loads(content))
    assert [m.wave for m in config.models] == [0, 0, 1, 1]
    assert config.routes()["gemma"].served_name == "google/gemma-1.1-7b-it"


@pytest.mark.parametrize(("awake", "healthy"), [(True, False), (False, True)])
def test_the_earlier_waves_healthcheck_passes_once_the_server_has_slept(
    tmp_path: Path, awake: bool, healthy: bool
) -> None:
    """The healthcheck's own script, run against a fake server as Docker runs it."""
    fake = FakeVllm("m", "0", Monitor(), awake=awake)
    marker = tmp_path / "has-slept"
    with Served(fake.app()) as served:
        command = residency.health_test(marker=str(marker))[1:]
        command[command.index("python3")] = sys.executable
        run = subprocess.run([*command[:3], served.url, str(marker)], capture_output=True)
        assert (run.returncode == 0) is healthy, run.stderr
        assert marker.exists() is healthy
        fake.awake = True  # woken later: it stays healthy
        again = subprocess.run([*command[:3], served.url, str(marker)], capture_output=True)
        assert (again.returncode == 0) is healthy


def test_plan_shows_the_worst_case_and_what_an_awake_share_could_hold(tmp_path: Path) -> None:
    from arenastack.plan import report

    plan = prepare(manifest(tmp_path), H200, host_memory_gib=128).plan
    (gpu,) = report.as_json(plan)["gpus"]
    shown = gpu["residency"]
    entries = {e.model.service: e for e in plan.on_gpu(0)}
    assert shown["awake_per_gpu"] == 2
    assert plan.budget_bytes is not None
    assert shown["budget_bytes"] == plan.budget_bytes[0] <= 0.42 * 140.4 * GIB
    assert shown["worst_case_bytes"] == sum(resident_bytes(list(entries.values()), 2).values())
    # Two of the largest residues asleep, the rest of the budget shared by the two awake.
    residues = sorted((e.asleep_bytes or 0 for e in entries.values()), reverse=True)
    assert shown["awake_share_bytes"] == (shown["budget_bytes"] - sum(residues[:2])) // 2
    for service, tokens in shown["kv_tokens_at_share"].items():
        entry = entries[service]
        assert entry.kv_tokens is not None and tokens > entry.kv_tokens  # more than it was given
        without_kv = (entry.footprint_bytes or 0) - (entry.kv_cache_bytes or 0)
        assert without_kv + tokens * (entry.kv_bytes_per_token or 0) <= shown["awake_share_bytes"]
    without = manifest(tmp_path, residency=None, planner={"gpu_budget": 0.95})
    assert report.as_json(prepare(without, H200).plan)["gpus"][0]["residency"] is None


def test_monitoring_scrapes_the_service_and_the_dashboard_has_its_row(tmp_path: Path) -> None:
    import re

    from arenastack.monitoring.dashboard import dashboard_queries
    from arenastack.residency.metrics import Metrics
    from arenastack.residency.policy import Residence

    parsed = document(manifest(tmp_path, monitoring={"enabled": True}))
    prometheus = yaml.safe_load(parsed["configs"]["prometheus_config"]["content"])
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["residency"]["static_configs"] == [{"targets": ["residency:8000"]}]
    board = json.loads(parsed["configs"]["grafana_dashboard"]["content"])
    assert board["panels"][0]["title"].startswith("Residency")
    queries = [expr for title, expr in dashboard_queries(board) if "arenastack_residency" in expr]
    assert len(queries) == 7
    # Every series the row asks for is one the service exports.
    exported = Metrics([("qwen3", "0")]).exposition([Residence("qwen3", "0")]).decode()
    for expr in queries:
        for name in re.findall(r"arenastack_residency_\w+", expr):
            assert re.search(rf"^{name}[{{ ]", exported, re.M), name


def test_the_sleeping_residue_is_never_under_what_the_gpu_showed(tmp_path: Path) -> None:
    """Measured on the lent H200 (vLLM 0.24.0, shared FACTS, 2026-12-02): a Qwen3-8B-shaped
    server at max_model_len 32,768 with CUDA graphs kept about 1.96 GiB on the GPU asleep at
    level 1 (48,959 → 25,613 MiB with another server beside it; 21.84 GiB freed). The plan's
    residue for the same shape must not be less."""
    models = {"qwen3": {"model": "Qwen/Qwen3-8B"}, "llama31": EIGHT_B["llama31"]}
    path = manifest(tmp_path, models, defaults={"gpu": 0, "max_model_len": 32768})
    entries = {e.model.service: e for e in prepare(path, H200, host_memory_gib=128).plan.entries}
    residue = entries["qwen3"].asleep_bytes
    assert residue is not None
    assert 1.96 * GIB <= residue <= 1.25 * 1.96 * GIB
