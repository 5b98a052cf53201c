"""The planner's footprints and KV tokens against what the lent H200 showed.

Measured 2026-12-02 on the lent H200 (NVML 143,771 MiB; driver 580.159.04; torch 2.11.0+cu130),
vLLM 0.24.0 from its PyPI wheel, the catalog's shapes with dummy weights, started as the rendered
compose file starts them (tools/gpu/stack_commands.py, tools/gpu/run_stack.py; the calibration
manifests and the runs' own JSON are in tools/gpu/calibration/). Process memory is nvidia-smi's
per process, once every server of the stack was healthy; each shape gave the same figure, within
40 MiB, in every run (two cold, one warm). docs/planner.md has the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from arenastack.render.pipeline import prepare
from tests.conftest import REPO

H200 = "1x140.4@9.0"
CALIBRATION = REPO / "tools" / "gpu" / "calibration"
MIB = 2**20

# service: nvidia-smi's MiB for its processes, KV cache sized in bytes, CUDA graphs on.
EXACT = {
    "catalog-a.yaml": {
        "qwen3": 23_988,
        "llama31": 22_954,
        "phi4mini": 15_872,
        "gemma": 25_752,
        "stablelm": 6_784,
    },
    "catalog-b.yaml": {"llama3": 19_350, "phi3": 21_728},
}
# tests/fixtures/manifests/elastic.yaml: the same three with kvcached 0.1.6, idle.
ELASTIC = {"qwen3": 20_520, "llama31": 19_856, "phi4mini": 13_218}


def footprints(manifest: Path) -> dict[str, int]:
    plan = prepare(manifest, H200).plan
    return {e.model.service: e.footprint_bytes or 0 for e in plan.entries}


@pytest.mark.parametrize(
    ("manifest", "measured"),
    [
        *[(CALIBRATION / name, figures) for name, figures in EXACT.items()],
        (REPO / "tests" / "fixtures" / "manifests" / "elastic.yaml", ELASTIC),
    ],
    ids=["exact-a", "exact-b", "elastic"],
)
def test_every_footprint_is_within_5_percent_of_nvidia_smi_and_never_under(
    manifest: Path, measured: dict[str, int]
) -> None:
    planned = footprints(manifest)
    assert set(planned) == set(measured)
    for service, mib in measured.items():
        plan_mib = planned[service] / MIB
        assert mib <= plan_mib <= 1.05 * mib, (service, round(plan_mib), mib)


def test_kv_tokens_in_bytes_are_what_vllm_gave() -> None:
    """vLLM logged exactly the tokens asked for (32,784 = 32,768 + the null block's 16), or one
    block fewer on the V1 runner (Phi-3 and Phi-4 mini: 32,768): never fewer than max_model_len."""
    plan = prepare(CALIBRATION / "catalog-a.yaml", H200).plan
    logged = {"qwen3": 32_784, "llama31": 32_784, "phi4mini": 32_768, "gemma": 8_208}
    for entry in plan.entries:
        if entry.model.service in logged:
            assert entry.kv_tokens is not None
            assert entry.kv_tokens - 16 <= logged[entry.model.service] <= entry.kv_tokens
            assert logged[entry.model.service] >= (entry.model.max_model_len or 0)


def test_a_fraction_s_kv_tokens_are_within_5_percent_of_vllm_s_and_never_over(
    tmp_path: Path,
) -> None:
    """Qwen3 8B at 0.16 in a chain (vLLM 0.24.0 with the fraction, not bytes): 40,704 tokens."""
    data = yaml.safe_load((CALIBRATION / "catalog-a.yaml").read_text())
    data["images"]["vllm"]["vllm_ref"] = "v0.10.1"  # fractions: the flag is newer
    data["models"] = {"qwen3": {**data["models"]["qwen3"], "gpu_memory_utilization": 0.16}}
    manifest = tmp_path / "chain.yaml"
    manifest.write_text(yaml.safe_dump(data))
    (entry,) = prepare(manifest, H200).plan.entries
    assert entry.kv_tokens is not None
    assert 0.95 * 40_704 <= entry.kv_tokens <= 40_704
