"""Residency (`residency:` in the manifest): more models than fit awake, the others asleep.

What is refused before anything starts, and the planner's two checks:

- the GPU: on each GPU, the `awake_per_gpu` largest footprints plus what every other server keeps
  there while it sleeps must fit planner.gpu_budget. A server asleep at level 1 has given back its
  weights and KV cache (vLLM's CuMemAllocator) and emptied torch's cache; it keeps its CUDA
  context, its CUDA graphs and the memory allocated outside torch, which is what the footprint
  model calls `outside` (plan/footprint.py), so that is its residue. Measured on the lent H200:
  a Qwen3-8B-shaped server at 32K kept 1.96 GiB asleep (shared FACTS), the plan says 2.28 GiB.
- the host: at level 1 the weights of a sleeping server go to pinned host memory, and torch's
  pinned-memory cache keeps those buffers once the server wakes again (the first sleep takes
  16 s, later ones 0.4 s), so the weights of every model that may sleep must fit the host's
  memory, less a tenth for the system and the stack's other containers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from arenastack.core.problems import Problem
from arenastack.manifest import Manifest, Model
from arenastack.plan.dialect import Dialect
from arenastack.plan.footprint import sizing_of
from arenastack.plan.sharing import models_by_gpu

GIB = 2**30
SLEEP_FLAG = "--enable-sleep-mode"
# What the host keeps for itself and the stack's other containers.
HOST_SHARE = 0.9
MEMINFO = Path("/proc/meminfo")


def problems(manifest: Manifest, models: list[Model], dialect: Dialect) -> Iterator[Problem]:
    """What residency cannot do with this manifest, each naming the field to change."""
    residency = manifest.residency
    if residency is None:
        return
    if manifest.device != "cuda":
        yield Problem(
            "residency",
            "sleep mode moves weights out of GPU memory through CUDA (vLLM's CuMemAllocator): "
            "device: cpu has none; remove the residency block",
        )
        return
    if reason := dialect.unsupported(SLEEP_FLAG):
        yield Problem("residency", f"{reason}; images.vllm.vllm_ref is {dialect.label}")
    if residency.sleep_level == 2:
        yield Problem(
            "residency.sleep_level",
            "2 discards the weights, and vLLM's /wake_up does not load them again (level 2 is for "
            "loading other weights after waking): a woken model would answer with no weights; "
            "use 1",
        )
    if manifest.planner.kv_cache == "elastic":
        yield Problem(
            "residency",
            "with planner.kv_cache 'elastic' an idle model already holds no KV cache, and "
            "kvcached's pages have not been tried with vLLM's sleep mode: use 'exact'",
        )
    for model in models:
        if model.port is not None:
            yield Problem(
                model.path_of("port"),
                "a sleeping-capable server runs with VLLM_SERVER_DEV_MODE=1, whose endpoints "
                "(/sleep, /wake_up and other internals) anyone reaching the port could call: "
                "it is not published; reach the model through the residency service "
                "(residency.port) or the gateway",
            )
        if model.gpus == "auto":
            yield Problem(
                model.path_of("gpu"),
                "with residency, set the GPU each model runs on: the planner does not place "
                "models that take turns",
            )
        elif len(model.gpus) > 1:
            yield Problem(
                model.path_of("gpu"),
                "with residency each model runs on one GPU: the residency service counts one GPU "
                "per model",
            )
        elif sizing_of(manifest, model, dialect) == "fraction" and manifest.planner.kv_cache != (
            "elastic"
        ):
            yield Problem(
                model.path_of("gpu_memory_utilization"),
                "with residency each KV cache must be sized in bytes, so that a model woken "
                "beside others gets the cache the plan gave it: leave the fraction 'auto' "
                "(vLLM v0.10.2 or later), or set kv_cache_memory_bytes",
            )
    if residency.awake_per_gpu == 1 and manifest.webui.mode == "multi":
        for gpu, sharing in models_by_gpu(models).items():
            if len(sharing) > 1:
                names = ", ".join(m.service for m in sharing)
                yield Problem(
                    "residency.awake_per_gpu",
                    f"1 with {names} on GPU {gpu}: a battle needs both its models awake at once, "
                    "so one of them would wait for the other's whole answer before it even "
                    "wakes; use 2 or more, or put them on different GPUs",
                )


def host_memory_gib(declared: float | None = None, meminfo: Path = MEMINFO) -> float | None:
    """The host's memory: `--host-memory`, else MemTotal in /proc/meminfo (None if unreadable)."""
    if declared is not None:
        return declared
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / GIB
    except (OSError, ValueError, IndexError):
        return None
    return None


def host_problems(
    manifest: Manifest, weights: dict[str, int | None], host_gib: float | None
) -> list[Problem]:
    """At level 1 the weights of every model that may sleep must fit the host's memory."""
    if manifest.residency is None or manifest.device != "cuda":
        return []
    if host_gib is None:
        return [
            Problem(
                "residency",
                f"the host's memory is unknown ({MEMINFO} unreadable), and sleeping weights go "
                "there: render with --host-memory GIB",
            )
        ]
    known = {service: w for service, w in weights.items() if w is not None}
    total = sum(known.values())
    allowed = HOST_SHARE * host_gib * GIB
    if total <= allowed:
        return []
    terms = " + ".join(f"{service} {w / GIB:.1f}" for service, w in known.items())
    return [
        Problem(
            "residency",
            f"the sleeping weights do not fit in host memory: {terms} = {total / GIB:.1f} GiB, "
            f"more than {HOST_SHARE:g} x {host_gib:.1f} GiB = {allowed / GIB:.1f} GiB (the rest is "
            f"the system's); short by {(total - allowed) / GIB:.1f} GiB: fewer models, or a host "
            "with more memory (--host-memory GIB when rendering elsewhere)",
        )
    ]
