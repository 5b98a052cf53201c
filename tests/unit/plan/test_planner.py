"""The memory planner against the real figures of the seed's five models (compose/model-info)
and the tiny local models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from arenastack.manifest import GpuSpec, Manifest, Model, resolve_models
from arenastack.plan import modelinfo
from arenastack.plan.planner import (
    GIB,
    Plan,
    activation_bytes,
    kv_bytes_per_token,
    plan,
    weights_bytes,
)
from arenastack.render.pipeline import prepare
from tests.conftest import REPO


def model(service: str, gpus: tuple[int, ...], **settings: object) -> Model:
    values: dict[str, object] = {
        "service": service, "model": f"org/{service}", "local_path": None, "gpus": gpus,
        "gpu_memory_utilization": 0.1, "dtype": "auto", "kv_cache_dtype": "auto",
        "max_model_len": None, "enforce_eager": True, "trust_remote_code": False,
        "served_model_name": service, "display_name": service, "port": None, "extra_args": (),
        "env": {}, "system_prompt": None, "shm_size": "8g", "cpu_kvcache_space": 1,
        "weights_gib": None, "params_b": None, "origins": {},
    }  # fmt: skip
    values.update(settings)
    return Model(**values)  # type: ignore[arg-type]


def catalog(name: str) -> modelinfo.ModelInfo:
    info = modelinfo.lookup(name, None, None, online=False)
    assert info is not None, name
    return info


# Expected figures, worked out by hand from each model's config.json:
# 2 (K and V) × layers × KV heads × head_dim × bytes per element.
SEED = {
    # service: (hub id, dtype, kv dtype, KV bytes per token, weight bytes)
    "llama3": ("meta-llama/Meta-Llama-3-8B-Instruct", "bfloat16", "auto",
               2 * 32 * 8 * 128 * 2, 16_060_522_496),
    "gemma": ("google/gemma-1.1-7b-it", "auto", "fp8", 2 * 28 * 16 * 256 * 1, 17_075_361_792),
    # DeciLM's KV width varies by layer (max 4); vLLM pads every layer to the widest.
    "decilm": ("Deci/DeciLM-7B-instruct", "auto", "fp8", 2 * 32 * 4 * 128 * 1, 14_087_102_464),
    "phi3": ("microsoft/Phi-3-mini-128k-instruct", "auto", "fp8", 2 * 32 * 32 * 96 * 1,
             7_642_159_104),
    # Stored in float32, served in float16 as the seed asks.
    "stablelm": ("stabilityai/stablelm-2-1_6b-chat", "float16", "fp8", 2 * 24 * 32 * 64 * 1,
                 1_644_515_328 * 2),
}  # fmt: skip


@pytest.mark.parametrize("service", SEED)
def test_seed_model_figures(service: str) -> None:
    hub_id, dtype, kv_dtype, kv_per_token, weights = SEED[service]
    seed_model = model(service, (0,), model=hub_id, dtype=dtype, kv_cache_dtype=kv_dtype)
    info = catalog(hub_id)
    assert kv_bytes_per_token(seed_model, info) == kv_per_token
    assert weights_bytes(seed_model, info) == weights


def test_fp8_halves_the_kv_cache_and_tensor_parallel_splits_it() -> None:
    info = catalog("meta-llama/Meta-Llama-3-8B-Instruct")
    bf16 = kv_bytes_per_token(model("m", (0,)), info)
    assert kv_bytes_per_token(model("m", (0,), kv_cache_dtype="fp8"), info) * 2 == bf16
    assert kv_bytes_per_token(model("m", (0, 1)), info) * 2 == bf16
    # 8 KV heads over 16 GPUs: each GPU still holds one head per layer.
    assert kv_bytes_per_token(model("m", tuple(range(16))), info) == bf16 // 8


def test_default_length_follows_vllm_rope_scaling() -> None:
    assert catalog("Deci/DeciLM-7B-instruct").max_position_embeddings == 16384  # dynamic ×2
    assert catalog("microsoft/Phi-3-mini-128k-instruct").max_position_embeddings == 131072


def seed_plan(gpus: str = "1x80@8.0") -> Plan:
    return prepare(REPO / "compose/models.yaml", gpus).plan


def test_seed_fits_one_80gb_gpu_with_room_to_spare() -> None:
    result = seed_plan()
    needed = [entry.fraction_needed for entry in result.entries]
    assert all(n is not None for n in needed)
    assert sum(n for n in needed if n) <= 0.95
    for entry in result.entries:
        assert entry.kv_tokens is not None and entry.tokens is not None
        assert entry.kv_tokens >= entry.tokens, f"{entry.model.service} KV covers max_model_len"


def auto_manifest(**planner: object) -> Manifest:
    data = yaml.safe_load((REPO / "compose/experiments/planned.yaml").read_text())
    data["planner"] = {**data.get("planner", {}), "online": False, **planner}
    return Manifest.model_validate(data)


def auto_plan(gpus: list[GpuSpec], **planner: object) -> Plan:
    manifest = auto_manifest(**planner)
    return plan(manifest, resolve_models(manifest, REPO / "compose"), gpus, REPO / "compose")


def test_auto_fractions_are_the_smallest_that_hold_the_kv_cache() -> None:
    result = auto_plan([GpuSpec(memory_gib=80, compute_capability="8.0")] * 2)
    assert not result.problems
    for entry in result.entries:
        fraction = entry.model.gpu_memory_utilization
        assert isinstance(fraction, float) and entry.fraction_needed is not None
        assert entry.fraction_needed <= fraction < entry.fraction_needed + 0.01
        assert entry.kv_tokens is not None and entry.tokens is not None
        assert entry.kv_tokens >= entry.tokens  # two full-length sequences, as the manifest asks
        assert entry.info is not None
        length = entry.model.max_model_len or entry.info.max_position_embeddings
        assert length is not None and entry.tokens == 2 * length


def test_auto_placement_spreads_over_two_gpus_best_fit_decreasing() -> None:
    gpus = [GpuSpec(memory_gib=48, compute_capability="8.6")] * 2
    result = auto_plan(gpus)
    assert not result.problems
    placed = {e.model.service: e.model.gpus for e in result.entries}
    assert set(placed.values()) == {(0,), (1,)}, "one 48 GiB GPU cannot hold all five"
    for index in (0, 1):
        assert result.fraction_total(index) <= 0.95
    # Biggest first: gemma (largest weights + KV) lands on GPU 0, the first GPU it fits.
    assert placed["gemma"] == (0,)
    # The start chain keeps manifest order among the models that share a GPU.
    services = [e.model.service for e in result.entries]
    assert services == ["llama3", "gemma", "decilm", "phi3", "stablelm"]


def test_auto_placement_respects_the_budget() -> None:
    gpus = [GpuSpec(memory_gib=48, compute_capability="8.6")] * 2
    tight = auto_plan(gpus, gpu_budget=0.6)
    assert tight.problems, "0.6 of two 48 GiB GPUs cannot hold the five"
    assert all(p.path.endswith(".gpu") and "short by" in p.message for p in tight.problems)


def test_tiny_model_figures_come_from_its_files(tiny_models: Path) -> None:
    directory = tiny_models / "tiny-llama-a"
    info = modelinfo.lookup("./tiny", directory, None, online=False)
    assert info is not None
    config = json.loads((directory / "config.json").read_text())
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    expected_kv = 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * 2
    assert kv_bytes_per_token(model("t", (0,), dtype="bfloat16"), info) == expected_kv
    hidden, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    assert info.parameters is not None and info.parameters > layers * hidden * hidden
    assert info.parameters < (vocab * hidden * 2 + layers * 20 * hidden * hidden)


def test_plan_json_has_the_documented_keys() -> None:
    from arenastack.plan.report import as_json

    document = as_json(seed_plan())
    for entry in document["models"]:
        assert {"gpu", "weights_bytes", "kv_bytes_per_token", "fraction_needed",
                "fraction_set"} <= set(entry)  # fmt: skip
    assert document["gpus"][0]["models"] == ["llama3", "gemma", "decilm", "phi3", "stablelm"]


def test_hints_size_a_model_without_files() -> None:
    assert weights_bytes(model("h", (0,), params_b=7.0), None) == 14_000_000_000
    assert weights_bytes(model("h", (0,), weights_gib=3.0), None) == 3 * GIB


def test_activations_match_what_vllm_logged_for_llama3_8b() -> None:
    """vLLM's profiling run logged 1.26 GiB of activations for Llama 3 8B at 8,192 tokens
    (vLLM PR #10511, the V0 engine of late 2024); our estimate must stay within 10 % of it."""
    llama3 = model("llama3", (0,), max_model_len=8192)
    estimate = activation_bytes(llama3, catalog("meta-llama--Meta-Llama-3-8B-Instruct")) / GIB
    assert estimate == pytest.approx(1.26, rel=0.10)
