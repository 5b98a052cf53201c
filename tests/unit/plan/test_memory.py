"""The planner's memory model of vLLM 0.24 against what vLLM 0.24.0 itself reported on an H100.

Measured 2026-11-25 on the lent H100 80GB HBM3 (NVML 81,559 MiB; CUDA reports 79.18 GiB; driver
580, torch 2.11.0+cu130), vLLM 0.24.0 from its PyPI wheel, the seed models' real shapes with
dummy weights (`--load-format dummy`), one server at a time unless said otherwise, each line from
that server's own log (`GPU KV cache size`, `Available KV cache memory`) and `nvidia-smi`.
Sources: ../shared/gpu-run/README.md (first runs, real random-weight files) and this branch's
runs (`tools/gpu/measure-vllm-memory.sh`, DEBUG logs); docs/planner.md has the full table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arenastack.manifest import load_manifest, parse_gpu_shorthand, resolve_models
from arenastack.plan import memory, planner

H100 = "1x79.65@9.0"

# service: (manifest entry, vLLM's KV cache tokens, or None where it refused to start)
MEASURED: dict[str, tuple[str, int | None]] = {
    # eager (--enforce-eager), default max_num_seqs (1024 on an H100)
    "llama3": (
        "{model: meta-llama/Meta-Llama-3-8B-Instruct, gpu_memory_utilization: 0.25, "
        "dtype: bfloat16, enforce_eager: true}",
        30_592,
    ),
    "phi3": (
        "{model: microsoft/Phi-3-mini-128k-instruct, gpu_memory_utilization: 0.17, "
        "kv_cache_dtype: fp8, max_model_len: 18000, enforce_eager: true}",
        29_989,
    ),
    "stablelm": (
        "{model: stabilityai/stablelm-2-1_6b-chat, gpu_memory_utilization: 0.07, "
        "dtype: float16, kv_cache_dtype: fp8, enforce_eager: true}",
        8_320,
    ),
    # The seed's DeciLM slot with a Llama-3-8B-shaped stand-in (vLLM 0.24 has no DeciLM-7B).
    "standin": (
        "{model: meta-llama/Meta-Llama-3-8B-Instruct, gpu_memory_utilization: 0.23, "
        "kv_cache_dtype: fp8, enforce_eager: true}",
        34_736,
    ),
    # CUDA graphs on (torch.compile), in a chain on one GPU
    "llama3-graphs": (
        "{model: meta-llama/Meta-Llama-3-8B-Instruct, gpu_memory_utilization: 0.22, "
        "dtype: bfloat16}",
        9_264,
    ),
    "llama3-graphs-25": (
        "{model: meta-llama/Meta-Llama-3-8B-Instruct, gpu_memory_utilization: 0.25, "
        "dtype: bfloat16}",
        28_720,
    ),
    "standin-graphs": (
        "{model: meta-llama/Meta-Llama-3-8B-Instruct, gpu_memory_utilization: 0.22, "
        "kv_cache_dtype: fp8}",
        18_016,
    ),
    "phi3-graphs": (
        "{model: microsoft/Phi-3-mini-128k-instruct, gpu_memory_utilization: 0.16, "
        "kv_cache_dtype: fp8, max_model_len: 18000}",
        22_987,
    ),
    "gemma-graphs": (
        "{model: google/gemma-1.1-7b-it, gpu_memory_utilization: 0.28, kv_cache_dtype: fp8}",
        8_512,
    ),
}


def plan_one(tmp_path: Path, service: str, entry: str, ref: str = "v0.24.0") -> planner.Plan:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        f"images: {{vllm: {{vllm_ref: {ref}}}}}\nplanner: {{online: false}}\n"
        f"models:\n  {service}: {entry}\n"
    )
    manifest = load_manifest(path).manifest
    assert manifest is not None
    models = resolve_models(manifest, tmp_path)
    return planner.plan(manifest, models, parse_gpu_shorthand(H100), tmp_path)


@pytest.mark.parametrize("service", sorted(MEASURED))
def test_kv_tokens_within_5_percent_of_vllm_0_24(tmp_path: Path, service: str) -> None:
    entry, measured = MEASURED[service]
    plan = plan_one(tmp_path, service, entry)
    assert not plan.problems, plan.problems
    tokens = plan.entries[0].kv_tokens
    assert tokens is not None and measured is not None
    assert abs(tokens - measured) / measured <= 0.05, f"plan {tokens:,} vs vLLM {measured:,}"


def test_gemma_at_the_seeds_0_27_is_refused_on_vllm_0_24(tmp_path: Path) -> None:
    """vLLM 0.24: "To serve at least one request with the model's max seq len (8192), (1.75 GiB
    KV cache is needed, which is larger than the available KV cache memory (1.58 GiB)". The
    sampler's float32 logits for 1024 sequences × 256,000 tokens took 3.63 GiB of its 0.27."""
    entry = (
        "{model: google/gemma-1.1-7b-it, gpu_memory_utilization: 0.27, kv_cache_dtype: fp8, "
        "enforce_eager: true}"
    )
    plan = plan_one(tmp_path, "gemma", entry)
    assert [p.path for p in plan.problems] == ["models.gemma.gpu_memory_utilization"]
    assert "fewer than one sequence of max_model_len (8,192)" in plan.problems[0].message
    # The v0.8 model (the pinned default ref) still accepts it: uncalibrated on a GPU.
    assert not plan_one(tmp_path, "gemma", entry, ref="v0.8.2").problems


def test_the_sampler_term_follows_max_num_seqs() -> None:
    """Gemma with --max-num-seqs 256 got 3.83 GiB of KV cache instead of 1.58 (vLLM's torch peak
    1.39 instead of 3.63 GiB); Llama 3 (V2 model runner) and Phi-3 did not change (0.88 and
    0.55 GiB, their forward pass)."""
    mm = memory.V0_24
    sequences, tokens = mm.batch_defaults(79.65, "9.0")
    assert (sequences, tokens) == (1024, 8192)
    assert mm.batch_defaults(80, "8.0") == (256, 2048)  # A100: vLLM's smaller defaults
    gemma_sampler = sequences * 256_000 * mm.sampler_bytes_per_logit / 2**30 + mm.sampler_fixed_gib
    assert gemma_sampler == pytest.approx(3.63, abs=0.05)
    quarter = 256 * 256_000 * mm.sampler_bytes_per_logit / 2**30 + mm.sampler_fixed_gib
    gemma_forward = 8192 * (2.8 * 3072 + 3.4 * 24576) * 2 / 2**30
    assert max(quarter, gemma_forward) == pytest.approx(1.39, abs=0.05)


# Held outside its fraction per server (nvidia-smi's process memory − fraction × 79.18 GiB).
OUTSIDE_EAGER_GIB = {"llama3": 1.24, "phi3": 0.60, "standin": 1.20, "stablelm": 0.61}
OUTSIDE_GRAPHS_GIB = {
    "llama3": 1.68,
    "llama3 (second run)": 2.07,
    "standin": 2.01,
    "gemma": 0.84,
    "phi3": 0.71,
}


def test_what_lies_outside_the_fraction_is_bounded_by_the_model() -> None:
    mm = memory.V0_24
    assert max(OUTSIDE_EAGER_GIB.values()) <= mm.outside_gib(enforce_eager=True)
    assert max(OUTSIDE_GRAPHS_GIB.values()) <= mm.outside_gib(enforce_eager=False)
    # The v0.8 model's allowance (the CUDA context alone) does not hold on 0.24.
    assert max(OUTSIDE_EAGER_GIB.values()) > memory.CUDA_CONTEXT_GIB


def test_the_planners_chain_with_cuda_graphs_started() -> None:
    """The seed's first four on vLLM 0.24 at the planner's fractions with CUDA graphs (0.22, 0.28,
    0.22, 0.16; StableLM's fp16 + fp8 KV cache fails with graphs on 0.24): all four healthy, the
    last finding 17.11 GiB free for its 12.67 GiB, 76,746 MiB in use with all four up."""
    mm = memory.V0_24
    fractions = [0.22, 0.28, 0.22, 0.16]
    assert sum(fractions) <= memory.safe_fraction_total(4, 79.65, mm.outside_gib(False), mm)
    usable = mm.usable_gib(79.65)
    free = usable - sum(f * usable for f in fractions[:3]) - (1.68 + 0.84 + 2.01) - 0.51
    assert free == pytest.approx(17.11, abs=0.1)


def test_chain_bound_explains_the_refused_fourth_server() -> None:
    """The seed's chain with CUDA graphs at 0.22/0.28/0.22 (+ an eager 0.07 server left running):
    the fourth, phi3 at 0.15, found 10.95 GiB free and needed 0.15 × 79.18 = 11.88 GiB."""
    mm = memory.V0_24
    fractions = [0.07, 0.22, 0.28, 0.22, 0.15]
    assert sum(fractions) > memory.safe_fraction_total(5, 79.65, mm.outside_gib(False), mm)
    # From the measured figures: fractions, outside memory and the starting server's context.
    usable = mm.usable_gib(79.65)
    held = sum(f * usable for f in fractions[:4]) + 0.61 + 1.68 + 0.84 + 2.01
    free = usable - held - mm.own_context_gib
    assert free == pytest.approx(10.95, abs=0.1)
    assert free < 0.15 * usable
