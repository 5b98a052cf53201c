"""Which GPUs the stack can use: declared (manifest or --gpus) or read from NVML.

The compute capabilities found here become the CUDA arch list the vLLM image is compiled for, so
an image built on an A100 host compiles kernels for sm_80 only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arenastack.core.problems import ManifestError, Problem
from arenastack.manifest import GpuSpec, Manifest, parse_gpu_shorthand

NO_GPU_HINT = (
    "declare the GPUs instead: in the manifest (`gpus: 2x80@8.0`, or a list of "
    "{memory_gib, compute_capability}) or on the command line (`--gpus 2x80@8.0`: count x GiB @ "
    "compute capability)"
)


def gpus_for(
    manifest: Manifest, cli_spec: str | None, detect: Callable[[], list[GpuSpec]] | None = None
) -> list[GpuSpec]:
    """The inventory the plan is checked against: --gpus, else the manifest, else NVML."""
    if manifest.device == "cpu":
        return []
    if cli_spec is not None:
        try:
            return parse_gpu_shorthand(cli_spec)
        except ValueError as error:
            raise ManifestError([Problem("--gpus", str(error))]) from None
    if manifest.gpus != "auto":
        assert not isinstance(manifest.gpus, str)
        return list(manifest.gpus)
    return (detect or detect_gpus)()


def detect_gpus() -> list[GpuSpec]:
    try:
        import pynvml  # the nvidia-ml-py distribution
    except ImportError:
        raise ManifestError(
            [Problem("gpus", f"'auto' needs the nvidia-ml-py package; or {NO_GPU_HINT}")]
        ) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise ManifestError(
            [Problem("gpus", f"'auto' found no NVIDIA driver ({error}); {NO_GPU_HINT}")]
        ) from None
    try:
        gpus = [_describe(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()
    if not gpus:
        raise ManifestError([Problem("gpus", f"'auto' found no GPU; {NO_GPU_HINT}")])
    return gpus


def _describe(pynvml: Any, index: int) -> GpuSpec:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    return GpuSpec(
        name=name.decode() if isinstance(name, bytes) else name,
        memory_gib=pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30,
        compute_capability=f"{major}.{minor}",
    )


def cuda_arch_list(gpus: list[GpuSpec]) -> str:
    """TORCH_CUDA_ARCH_LIST for exactly these GPUs, e.g. '8.0 9.0'."""
    capabilities = {tuple(int(part) for part in gpu.compute_capability.split(".")) for gpu in gpus}
    return " ".join(f"{major}.{minor}" for major, minor in sorted(capabilities))
