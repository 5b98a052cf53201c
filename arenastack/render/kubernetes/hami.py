"""HAMi memory slices: what each model requests, and the fraction vLLM gets inside it."""

from __future__ import annotations

import math

from arenastack.manifest import GpuSpec, Model
from arenastack.plan.memory import CUDA_CONTEXT_GIB

CONTEXT_MIB = math.ceil(CUDA_CONTEXT_GIB * 1024)


def gpumem_mib(model: Model, gpus: list[GpuSpec], footprint_bytes: int | None = None) -> int | None:
    """The HAMi slice of each of the model's GPUs: fraction × the smallest one's memory, or the
    whole footprint of a model sized in bytes (whose fraction is only what vLLM's start-up check
    reads)."""
    assert model.gpus != "auto" and model.gpu_memory_utilization != "auto"
    memory = [gpus[index].memory_gib for index in model.gpus if index < len(gpus)]
    if not memory:
        return None
    if footprint_bytes is not None:
        return math.ceil(footprint_bytes / 2**20)
    return math.floor(model.gpu_memory_utilization * min(memory) * 1024)


def slice_fraction(slice_mib: int) -> float:
    """vLLM's fraction inside a HAMi slice: the slice less the CUDA context, rounded down."""
    return math.floor((slice_mib - CONTEXT_MIB) / slice_mib * 1000) / 1000
