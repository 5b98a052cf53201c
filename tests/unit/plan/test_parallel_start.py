"""Co-located models start together where their KV caches are sized in bytes (vLLM v0.10.2 and
later), one after another where a fraction sizes them; the planner's footprint check stands
between a parallel start and an out-of-memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from arenastack.core.problems import ManifestError
from arenastack.plan.footprint import BLOCK_TOKENS, exact_kv_bytes, init_check_fraction
from arenastack.plan.memory import GIB, V0_24
from arenastack.plan.planner import outside_bytes
from arenastack.render.pipeline import compose_text, prepare
from tests.conftest import REPO

THREE = {
    "qwen3": {"model": "Qwen/Qwen3-8B"},
    "llama31": {"model": "meta-llama/Llama-3.1-8B-Instruct"},
    "phi4mini": {"model": "microsoft/Phi-4-mini-instruct"},
}


def manifest(tmp_path: Path, ref: str, **more: Any) -> Path:
    data: dict[str, Any] = {
        "images": {"vllm": {"source": "wheel", "vllm_ref": ref}},
        "defaults": {"gpu": 0, "max_model_len": 32768},
        "models": THREE,
        **more,
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def services(path: Path, gpus: str = "1x139.8@9.0") -> dict[str, Any]:
    document = yaml.safe_load(compose_text(prepare(path, gpus), path.parent / "c.yml"))
    return {name: document["services"][name] for name in THREE}


def flag(service: dict[str, Any], name: str) -> str | None:
    command = service["command"]
    return command[command.index(name) + 1] if name in command else None


def waits(service: dict[str, Any]) -> set[str]:
    return set(service["depends_on"]) - {"fetch-models"}


@pytest.mark.parametrize("ref", ["v0.10.2", "v0.24.0", "v0.32.0"])
def test_refs_with_kv_cache_memory_bytes_start_together_sized_in_bytes(
    tmp_path: Path, ref: str
) -> None:
    found = services(manifest(tmp_path, ref))
    for service in found.values():
        assert flag(service, "--kv-cache-memory-bytes") is not None
        assert waits(service) == set(), "no co-located model waits for another"
    # Exactly max_model_len tokens of KV cache, in whole blocks, plus the null block: Llama 3.1
    # 8B's 128 KiB per token (32 layers x 8 KV heads x 128 x 2 x bf16).
    per_token = 2 * 32 * 8 * 128 * 2
    blocks = 32768 // BLOCK_TOKENS + 1
    assert flag(found["llama31"], "--kv-cache-memory-bytes") == str(
        blocks * BLOCK_TOKENS * per_token
    )


# Models vLLM v0.8.2 serves, each at a length its config allows.
SEEDLIKE = {
    "llama3": {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "max_model_len": 8192},
    "phi3": {"model": "microsoft/Phi-3-mini-128k-instruct", "max_model_len": 8192},
    "stablelm": {"model": "stabilityai/stablelm-2-1_6b-chat", "max_model_len": 4096},
}


@pytest.mark.parametrize("ref", ["v0.8.2", "v0.10.1"])
def test_refs_without_the_flag_keep_fractions_and_the_chain(tmp_path: Path, ref: str) -> None:
    path = manifest(tmp_path, ref, models=SEEDLIKE)
    document = yaml.safe_load(compose_text(prepare(path, "1x80@8.0"), tmp_path / "c.yml"))
    found = {name: document["services"][name] for name in SEEDLIKE}
    assert all(flag(s, "--kv-cache-memory-bytes") is None for s in found.values())
    assert all(float(flag(s, "--gpu-memory-utilization") or 0) > 0 for s in found.values())
    assert waits(found["llama3"]) == set()
    assert waits(found["phi3"]) == {"llama3"} and waits(found["stablelm"]) == {"phi3"}


def test_a_fraction_set_by_hand_keeps_its_model_in_the_chain(tmp_path: Path) -> None:
    models = {**THREE, "llama31": {**THREE["llama31"], "gpu_memory_utilization": 0.3}}
    found = services(manifest(tmp_path, "v0.24.0", models=models))
    assert flag(found["llama31"], "--kv-cache-memory-bytes") is None
    assert flag(found["llama31"], "--gpu-memory-utilization") == "0.3"
    # The GPU has a fraction-sized model, so every model on it starts one after another.
    assert waits(found["llama31"]) == {"qwen3"} and waits(found["phi4mini"]) == {"llama31"}


def test_planner_start_chain_chains_models_sized_in_bytes(tmp_path: Path) -> None:
    found = services(manifest(tmp_path, "v0.24.0", planner={"start": "chain"}))
    assert flag(found["qwen3"], "--kv-cache-memory-bytes") is not None
    assert waits(found["llama31"]) == {"qwen3"}


def test_planner_start_parallel_refuses_a_model_sized_by_its_fraction(tmp_path: Path) -> None:
    models = {**THREE, "phi4mini": {**THREE["phi4mini"], "gpu_memory_utilization": 0.2}}
    path = manifest(tmp_path, "v0.24.0", models=models, planner={"start": "parallel"})
    with pytest.raises(ManifestError) as raised:
        prepare(path, "1x139.8@9.0")
    (problem,) = raised.value.problems
    assert problem.path == "models.phi4mini.gpu_memory_utilization"
    assert "planner.start is 'parallel'" in problem.message


def test_footprints_over_the_budget_fail_naming_every_model_and_the_shortfall(
    tmp_path: Path,
) -> None:
    with pytest.raises(ManifestError) as raised:
        prepare(manifest(tmp_path, "v0.24.0"), "1x48@8.6")
    (problem,) = raised.value.problems
    assert problem.path == "defaults.gpu"
    for name in THREE:
        assert name in problem.message
    assert "more than planner.gpu_budget 0.95" in problem.message
    assert "short by" in problem.message and "GiB" in problem.message


def test_the_footprint_is_weights_overhead_kv_and_what_lies_outside_the_fraction(
    tmp_path: Path,
) -> None:
    prepared = prepare(manifest(tmp_path, "v0.24.0"), "1x139.8@9.0")
    for entry in prepared.plan.entries:
        assert entry.sizing == "bytes"
        assert entry.weights_bytes is not None and entry.kv_cache_bytes is not None
        outside = outside_bytes(entry.model, entry.info, V0_24, elastic=False)
        expected = entry.weights_bytes + entry.overhead_bytes + entry.kv_cache_bytes + outside
        assert entry.footprint_bytes == expected
    assert prepared.plan.together == frozenset({0})


def test_the_init_check_fraction_passes_whatever_the_neighbours_hold(tmp_path: Path) -> None:
    """vLLM checks free >= fraction x total at start. With every neighbour at its full
    footprint already, what is left is at least this server's footprint less its context."""
    prepared = prepare(manifest(tmp_path, "v0.24.0"), "1x139.8@9.0")
    usable = prepared.plan.entries[0].gpu_memory_bytes
    assert usable is not None
    total = sum(e.footprint_bytes or 0 for e in prepared.plan.entries)
    for entry in prepared.plan.entries:
        assert entry.footprint_bytes is not None
        others = total - entry.footprint_bytes
        free_at_check = usable - others - V0_24.own_context_gib * GIB
        fraction = entry.model.gpu_memory_utilization
        assert fraction == init_check_fraction(entry.footprint_bytes, usable, V0_24)
        assert isinstance(fraction, float) and fraction * usable <= free_at_check


def test_exact_kv_bytes_round_up_to_whole_blocks_and_keep_the_null_block() -> None:
    assert exact_kv_bytes(1, 10) == 2 * BLOCK_TOKENS * 10
    assert exact_kv_bytes(BLOCK_TOKENS, 10) == 2 * BLOCK_TOKENS * 10
    assert exact_kv_bytes(BLOCK_TOKENS + 1, 10) == 3 * BLOCK_TOKENS * 10


def test_max_model_len_beyond_the_model_is_refused_where_its_config_is_at_hand(
    tmp_path: Path,
) -> None:
    llama3: dict[str, Any] = {"model": "meta-llama/Meta-Llama-3-8B-Instruct"}
    llama3["max_model_len"] = 100000
    data = {"models": {"llama3": llama3}, "webui": {"mode": "single"}}
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ManifestError) as raised:
        prepare(path, "1x80@8.0")
    (problem,) = [p for p in raised.value.problems if p.path.endswith("max_model_len")]
    assert problem.path == "models.llama3.max_model_len"
    assert "100,000" in problem.message and "8,192" in problem.message
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN" in problem.message
    llama3["env"] = {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}
    llama3["gpu_memory_utilization"] = 0.9
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    prepare(path, "1x80@8.0")


# --- elastic (kvcached) ----------------------------------------------------------------------


def test_elastic_models_share_one_pool_and_run_kvcached(tmp_path: Path) -> None:
    path = manifest(tmp_path, "v0.24.0", planner={"kv_cache": "elastic"})
    prepared = prepare(path, "1x139.8@9.0")
    found = services(path)
    pools = {flag(s, "--kv-cache-memory-bytes") for s in found.values()}
    for entry in prepared.plan.entries:
        assert entry.sizing == "elastic" and entry.kv_cache_bytes is not None
        # Each may fill the pool: far more than one sequence, what 'exact' would give.
        assert entry.kv_tokens is not None and entry.kv_tokens > 32768
    assert len({int(p or 0) // 2**30 for p in pools}) == 1, "one pool, cut in each one's blocks"
    for service in found.values():
        environment = service["environment"]
        assert environment["ENABLE_KVCACHED"] == "true"
        assert environment["KVCACHED_AUTOPATCH"] == "1"
        assert environment["VLLM_USE_V2_MODEL_RUNNER"] == "0"
        assert service["image"].endswith("-kvcached-0.1.6")
        assert waits(service) == set()
    document = yaml.safe_load(compose_text(prepared, tmp_path / "c.yml"))
    assert document["services"]["fetch-models"]["build"]["args"]["KVCACHED_VERSION"] == "0.1.6"


def test_an_elastic_pool_must_hold_one_sequence_of_every_model(tmp_path: Path) -> None:
    path = manifest(tmp_path, "v0.24.0", planner={"kv_cache": "elastic", "gpu_budget": 0.4})
    with pytest.raises(ManifestError) as raised:
        prepare(path, "1x139.8@9.0")
    (problem,) = raised.value.problems
    assert problem.path == "defaults.gpu"
    assert "no room for an elastic KV pool" in problem.message
    assert all(name in problem.message for name in THREE)


@pytest.mark.parametrize(
    ("ref", "device", "expected"),
    [
        ("v0.8.2", "cuda", "runs the V0 engine here"),
        ("v0.24.0", "cpu", "device: cpu has none"),
    ],
)
def test_elastic_is_refused_where_kvcached_cannot_run(
    tmp_path: Path, ref: str, device: str, expected: str
) -> None:
    path = manifest(tmp_path, ref, planner={"kv_cache": "elastic"}, device=device)
    with pytest.raises(ManifestError) as raised:
        prepare(path, "1x139.8@9.0")
    messages = {p.path: p.message for p in raised.value.problems}
    assert expected in messages["planner.kv_cache"]


def test_elastic_past_the_version_kvcached_was_tested_with_warns(tmp_path: Path) -> None:
    path = manifest(tmp_path, "v0.32.0", planner={"kv_cache": "elastic"})
    warnings = [str(w) for w in prepare(path, "1x139.8@9.0").warnings]
    assert any(w.startswith("planner.kv_cache: kvcached is tested") for w in warnings)


def test_kv_cache_memory_bytes_by_hand_needs_a_ref_that_takes_it(tmp_path: Path) -> None:
    models = {**THREE, "qwen3": {**THREE["qwen3"], "kv_cache_memory_bytes": 8 * 2**30}}
    with pytest.raises(ManifestError) as raised:
        prepare(manifest(tmp_path, "v0.10.1", models=models), "1x139.8@9.0")
    messages = {p.path: p.message for p in raised.value.problems}
    assert "only exists from vLLM v0.10.2" in messages["models.qwen3.kv_cache_memory_bytes"]
    found = services(manifest(tmp_path, "v0.24.0", models=models))
    assert flag(found["qwen3"], "--kv-cache-memory-bytes") == str(8 * 2**30)


@pytest.mark.parametrize(("start", "waits_for"), [("auto", {"qwen"}), ("parallel", set())])
def test_on_cpu_a_slot_chains_unless_told_to_start_together(
    tmp_path: Path, start: str, waits_for: set[str]
) -> None:
    """CPU KV caches are fixed (VLLM_CPU_KVCACHE_SPACE): starting together is safe, but two loads
    at once crowd a small machine, so 'auto' keeps the chain."""
    data = yaml.safe_load((REPO / "compose" / "cpu.yaml").read_text())
    data["planner"] = {"start": start}
    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    document = yaml.safe_load(compose_text(prepare(path), tmp_path / "c.yml"))
    assert waits(document["services"]["smollm"]) == waits_for
