"""GPU inventory: declared GPUs, the NVML path, and the CUDA arch list built from them."""

from __future__ import annotations

import pytest

from arenastack.core.problems import ManifestError
from arenastack.manifest import GpuSpec, Manifest, parse_gpu_shorthand
from arenastack.plan.inventory import cuda_arch_list, detect_gpus, gpus_for


def manifest(**fields: object) -> Manifest:
    return Manifest.model_validate({"models": {"m": {"model": "o/m"}}, **fields})


def test_shorthand() -> None:
    gpus = parse_gpu_shorthand("2x80@8.0,1x24@8.9")
    assert [(g.memory_gib, g.compute_capability) for g in gpus] == [
        (80, "8.0"), (80, "8.0"), (24, "8.9")
    ]  # fmt: skip
    with pytest.raises(ValueError, match="COUNTxGIB@CAPABILITY"):
        parse_gpu_shorthand("2x80")


def test_command_line_wins_over_manifest_which_wins_over_nvml() -> None:
    def never() -> list[GpuSpec]:
        raise AssertionError("NVML must not be asked")

    declared = manifest(gpus="1x40@8.0")
    assert len(gpus_for(declared, "4x80@9.0", never)) == 4
    assert gpus_for(declared, None, never)[0].memory_gib == 40
    detected = [GpuSpec(memory_gib=24, compute_capability="8.9", name="L4")]
    assert gpus_for(manifest(), None, lambda: detected) == detected
    assert gpus_for(manifest(device="cpu"), None, never) == []


def test_without_a_driver_nvml_fails_with_how_to_declare_gpus() -> None:
    """On a machine without an NVIDIA driver (like CI), the real NVML library is missing."""
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver; tests/gpu covers it")
    with pytest.raises(ManifestError) as raised:
        detect_gpus()
    (problem,) = raised.value.problems
    assert problem.path == "gpus"
    assert "--gpus 2x80@8.0" in problem.message and "gpus: 2x80@8.0" in problem.message


def test_arch_list_has_exactly_the_capabilities_present() -> None:
    gpus = parse_gpu_shorthand("1x80@9.0,2x80@8.0,1x24@8.9,1x180@10.0")
    assert cuda_arch_list(gpus) == "8.0 8.9 9.0 10.0"
