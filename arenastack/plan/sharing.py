"""Which models share each GPU, and how much of it their fractions add up to: the one place
the checks, the planner and the plan report take per-GPU sums from."""

from __future__ import annotations

from collections import defaultdict

from arenastack.manifest import Model


def models_by_gpu(models: list[Model]) -> dict[int, list[Model]]:
    """GPU index → the placed models on it, in manifest order; 'auto' placements are left out."""
    placed: dict[int, list[Model]] = defaultdict(list)
    for model in models:
        if model.gpus != "auto":
            for index in model.gpus:
                placed[index].append(model)
    return dict(sorted(placed.items()))


def fraction_total(models: list[Model]) -> float:
    """The sum of the fractions set; 'auto' ones count once the planner has settled them."""
    return sum(m.gpu_memory_utilization for m in models if m.gpu_memory_utilization != "auto")


def fraction_terms(models: list[Model]) -> str:
    """`llama3 0.25 + phi3 0.17`, for messages."""
    return " + ".join(
        f"{m.service} {m.gpu_memory_utilization}"
        for m in models
        if m.gpu_memory_utilization != "auto"
    )


def starts_together(models: list[Model], start: str, device: str = "cuda") -> frozenset[int]:
    """The GPUs (start slots on CPU) whose models start together rather than one after another
    (planner.start). On CUDA, 'auto' picks those where every model has its KV cache sized in
    bytes, so that none is sized from a memory profile its neighbours disturb while they load
    (vLLM #9198). On CPU every KV cache is a fixed VLLM_CPU_KVCACHE_SPACE, so only the time two
    loads at once take on a small machine is at stake: 'parallel' starts a slot together,
    'auto' keeps it a chain."""
    slots = models_by_gpu(models)
    if start == "chain" or (device == "cpu" and start == "auto"):
        return frozenset()
    if device == "cpu":
        return frozenset(slots)
    return frozenset(
        index
        for index, sharing in slots.items()
        if all(m.kv_cache_memory_bytes is not None for m in sharing)
    )
