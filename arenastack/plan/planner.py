"""GPU memory plan: what each model needs, the fraction that buys it, and where it fits.

The model, per vLLM instance on a GPU of total memory T (all in bytes):

    needed = weights / tp + activations + cuda_graphs + kv_per_token / tp × tokens
    fraction_needed = needed / T

- weights: parameters × bytes of the served dtype (from safetensors headers or the index);
- kv_per_token = 2 (K and V) × Σ_layers kv_heads × head_dim × bytes of the KV-cache dtype
  (fp8 is 1 byte; `auto` follows the model dtype);
- tokens = max_model_len (or the model's max_position_embeddings) × full_length_sequences;
- activations: the peak of vLLM's profiling run, `activation_bytes` below, plus NON_TORCH_GIB of
  allocations outside torch (cuBLAS workspaces, kernels loaded at the first forward pass);
- cuda_graphs: CUDA_GRAPHS_GIB unless enforce_eager (outside the fraction in vLLM 0.8, inside
  from 0.21; counted either way so the GPU has room for it).

The CUDA context of each instance (CUDA_CONTEXT_GIB) lives outside its fraction: current vLLM
snapshots free memory after creating it. It is why fractions on a GPU must leave headroom.

On `device: cpu` the KV cache is a fixed VLLM_CPU_KVCACHE_SPACE, and the plan reports how many
tokens it buys.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from arenastack.core.problems import Problem
from arenastack.manifest import GpuSpec, Manifest, Model
from arenastack.plan import memory, modelinfo
from arenastack.plan.dialect import cuda_dialect
from arenastack.plan.footprint import (
    Sizing,
    exact_kv_bytes,
    footprint_bytes,
    init_check_fraction,
    kv_bytes_for_pool,
    sizing_of,
)
from arenastack.plan.memory import V0_8, MemoryModel, safe_fraction_total
from arenastack.plan.modelinfo import DTYPE_BYTES, ModelInfo
from arenastack.plan.sharing import (
    fraction_terms,
    fraction_total,
    models_by_gpu,
    starts_together,
)

GIB = 2**30
NON_TORCH_GIB = 1.0
CUDA_GRAPHS_GIB = 0.5
# When a model's shape is unknown (manifest hints only).
FALLBACK_ACTIVATIONS_GIB = 1.5
# vLLM profiles one batch of max_model_len tokens (at least 2048); above 32K it chunks prefills.
PROFILE_TOKENS = (2048, 32768)
# The sampler holds float32 logits for up to max_num_seqs (256) sequences in about four copies
# (logits, probabilities, log-probabilities, the sorted copy for top-p/top-k).
SAMPLER_SEQUENCES = 256
SAMPLER_COPIES = 4
KV_DTYPE_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


@dataclass(frozen=True)
class ModelPlan:
    model: Model
    info: ModelInfo | None
    weights_bytes: int | None  # per GPU
    kv_bytes_per_token: int | None  # per GPU
    overhead_bytes: int
    tokens: int | None  # KV tokens the model must hold
    gpu_memory_bytes: int | None  # of the smallest GPU it runs on; None on CPU
    kv_cache_bytes: int | None  # its KV cache: in bytes, or what its fraction (or CPU space) leaves
    sizing: Sizing = "fraction"
    footprint_bytes: int | None = None  # as nvidia-smi shows it; sized in bytes only

    @property
    def needed_bytes(self) -> int | None:
        if self.weights_bytes is None or self.kv_bytes_per_token is None or self.tokens is None:
            return None
        return self.weights_bytes + self.overhead_bytes + self.kv_bytes_per_token * self.tokens

    @property
    def fraction_needed(self) -> float | None:
        needed = self.needed_bytes
        if needed is None or self.gpu_memory_bytes is None:
            return None
        return needed / self.gpu_memory_bytes

    @property
    def asleep_bytes(self) -> int | None:
        """What the server keeps on its GPU asleep (sleep level 1): its footprint less the
        weights, the KV cache and the profile's peak, which sleep mode and torch's emptied
        cache give back (plan/residency.py)."""
        if self.footprint_bytes is None or self.weights_bytes is None:
            return None
        kv = self.kv_cache_bytes or 0
        return self.footprint_bytes - self.weights_bytes - kv - self.overhead_bytes

    @property
    def kv_tokens(self) -> int | None:
        """Tokens of KV cache the set fraction (or the CPU KV space) buys."""
        if self.kv_cache_bytes is None or not self.kv_bytes_per_token:
            return None
        return max(0, self.kv_cache_bytes) // self.kv_bytes_per_token


@dataclass(frozen=True)
class Plan:
    models: list[Model]  # every 'auto' settled
    entries: list[ModelPlan]
    gpus: list[GpuSpec]
    problems: list[Problem]
    warnings: list[Problem]
    # GPUs whose models start together (every one sized in bytes); the others chain them.
    together: frozenset[int] = frozenset()
    # residency.awake_per_gpu, where the manifest has residency.
    awake_per_gpu: int | None = None
    budget_bytes: dict[int, int] | None = None  # planner.gpu_budget of each GPU

    def on_gpu(self, index: int) -> list[ModelPlan]:
        return [e for e in self.entries if e.model.gpus != "auto" and index in e.model.gpus]

    def fraction_total(self, index: int) -> float:
        return fraction_total([e.model for e in self.on_gpu(index)])


def served_dtype_bytes(model: Model, info: ModelInfo) -> int:
    dtype = info.torch_dtype if model.dtype == "auto" else model.dtype
    # vLLM serves float32 checkpoints in 16 bits unless asked for float32 explicitly.
    if model.dtype == "auto" and DTYPE_BYTES.get(dtype, 2) == 4:
        return 2
    return DTYPE_BYTES.get(dtype, 2)


def kv_bytes_per_token(model: Model, info: ModelInfo) -> int:
    element = KV_DTYPE_BYTES.get(model.kv_cache_dtype) or served_dtype_bytes(model, info)
    tp = model.tensor_parallel_size
    # Tensor parallelism splits KV heads across GPUs; a layer with fewer heads than GPUs
    # replicates its one head on each.
    heads_per_gpu = sum(max(1, math.ceil(heads / tp)) for heads in info.kv_heads_per_layer)
    return 2 * heads_per_gpu * info.head_dim * element


def weights_bytes(model: Model, info: ModelInfo | None) -> int | None:
    tp = model.tensor_parallel_size
    if info is not None and info.parameters is not None:
        return info.parameters * served_dtype_bytes(model, info) // tp
    if model.params_b is not None:
        element = DTYPE_BYTES.get(model.dtype, 2) if model.dtype != "auto" else 2
        return int(model.params_b * 1e9 * element) // tp
    if model.weights_gib is not None:
        return int(model.weights_gib * GIB) // tp
    return None


def activation_bytes(model: Model, info: ModelInfo | None) -> int:
    """Peak of vLLM's profiling run: the activations of one full batch through a decoder layer
    (residual stream, attention projections, the MLP's two wide halves) and the sampler's logits.
    For Llama 3 8B at 8192 tokens this gives 1.18 GiB; vLLM logged 1.26 GiB (vLLM PR #10511)."""
    if info is None:
        return int(FALLBACK_ACTIVATIONS_GIB * GIB)
    low, high = PROFILE_TOKENS
    tokens = min(max(model.max_model_len or info.max_position_embeddings or low, low), high)
    per_token = (4 * info.hidden_size + 2 * info.intermediate_size) * served_dtype_bytes(
        model, info
    )
    logits = SAMPLER_SEQUENCES * info.vocab_size * 4 * SAMPLER_COPIES
    return tokens * per_token // model.tensor_parallel_size + logits


def overhead_bytes(
    model: Model,
    info: ModelInfo | None,
    mm: MemoryModel = V0_8,
    gpu: GpuSpec | None = None,
    v2_runner_allowed: bool = True,
) -> int:
    """Inside the fraction besides weights and KV cache, per vLLM version (plan/memory.py);
    `gpu` decides vLLM's batch defaults (an 80 GiB A100's when unknown)."""
    graphs = 0.0 if model.enforce_eager else CUDA_GRAPHS_GIB
    if info is None:
        return activation_bytes(model, info) + int((NON_TORCH_GIB + graphs) * GIB)
    return memory.overhead_bytes(
        mm,
        hidden=info.hidden_size,
        intermediate=info.intermediate_size,
        vocab=info.vocab_size,
        dtype_bytes=served_dtype_bytes(model, info),
        max_model_len=model.max_model_len or info.max_position_embeddings or 2048,
        tensor_parallel=model.tensor_parallel_size,
        enforce_eager=model.enforce_eager,
        architectures=info.architectures,
        gpu_memory_gib=gpu.memory_gib if gpu else 80.0,
        compute_capability=gpu.compute_capability if gpu else "8.0",
        v2_runner_allowed=v2_runner_allowed,
    )


def outside_bytes(model: Model, info: ModelInfo | None, mm: MemoryModel, elastic: bool) -> int:
    """What the server holds outside its profile, weights and KV cache (memory.py)."""
    if info is None:
        return int(mm.outside_gib(model.enforce_eager) * GIB)
    return memory.footprint_outside_bytes(
        mm,
        intermediate=info.intermediate_size,
        layers=info.num_layers,
        max_model_len=model.max_model_len or info.max_position_embeddings or 2048,
        enforce_eager=model.enforce_eager,
        architectures=info.architectures,
        v2_runner_allowed=not elastic,
    )


def plan(
    manifest: Manifest,
    models: list[Model],
    gpus: list[GpuSpec] | None,
    manifest_dir: Path,
    sequences: int | None = None,
    explain: bool = False,
) -> Plan:
    """Settle every 'auto' that can be settled. The plan keeps every model, in manifest order;
    one the planner cannot settle stays 'auto' and its problem is in `problems`, so the checks
    still run on all of them. `gpus` is None when the inventory is unknown (it has a problem of
    its own): then nothing is settled. The hub is asked only for models whose 'auto' needs it,
    or for every unknown model when `explain` (the plan command) wants the full table."""
    sequences = sequences or manifest.planner.full_length_sequences
    host_cache = None
    if manifest.hf_cache.host_path:
        host_cache = (manifest_dir / Path(manifest.hf_cache.host_path).expanduser()).resolve()
    online = manifest.planner.online and os.environ.get("HF_HUB_OFFLINE", "") in ("", "0")
    infos = [
        modelinfo.lookup(m.model, m.local_path, host_cache, online and (explain or _has_auto(m)))
        for m in models
    ]
    too_long = [
        p for m, i in zip(models, infos, strict=True) if (p := _longer_than_the_model(m, i))
    ]
    if manifest.device == "cpu":
        planned = _plan_cpu(models, infos, sequences, manifest.planner.start)
    elif gpus is None:
        planned = Plan(models, [], [], [], [])
    else:
        planned = _plan_cuda(manifest, models, infos, gpus, sequences)
    return replace(planned, problems=too_long + planned.problems)


# What vLLM reads to allow a max_model_len beyond the model's own limit (vllm/envs.py).
ALLOW_LONG = "VLLM_ALLOW_LONG_MAX_MODEL_LEN"


def _longer_than_the_model(model: Model, info: ModelInfo | None) -> Problem | None:
    """vLLM refuses a max_model_len above the model's limit (its positions, stretched by RoPE
    scaling) unless VLLM_ALLOW_LONG_MAX_MODEL_LEN is set: say so before anything starts."""
    limit = info.max_position_embeddings if info else None
    if limit is None or model.max_model_len is None or model.max_model_len <= limit:
        return None
    if ALLOW_LONG in model.env:
        return None
    return Problem(
        model.path_of("max_model_len"),
        f"{model.max_model_len:,} is more than {model.model} takes: its config allows "
        f"{limit:,} tokens ({info.source if info else ''}), and vLLM refuses to start beyond "
        f"that; lower it, or set env {ALLOW_LONG}: '1' if the model is known to extrapolate",
    )


def _has_auto(model: Model) -> bool:
    return model.gpus == "auto" or model.gpu_memory_utilization == "auto"


def _tokens(model: Model, info: ModelInfo | None, sequences: int) -> int | None:
    length = model.max_model_len or (info.max_position_embeddings if info else None)
    return None if length is None else length * sequences


def _entry(
    model: Model,
    info: ModelInfo | None,
    sequences: int,
    memory: int | None,
    mm: MemoryModel = V0_8,
    gpu: GpuSpec | None = None,
    sizing: Sizing = "fraction",
) -> ModelPlan:
    """`memory`: the total the fraction applies to (the version's usable memory)."""
    kv_cache = None
    weights = weights_bytes(model, info)
    # kvcached needs vLLM's V2 model runner off (stack.KVCACHED_ENVIRONMENT).
    elastic = sizing == "elastic"
    overhead = overhead_bytes(model, info, mm, gpu, v2_runner_allowed=not elastic)
    per_token = kv_bytes_per_token(model, info) if info else None
    tokens = _tokens(model, info, sequences)
    footprint = None
    if sizing != "fraction":
        kv_cache = model.kv_cache_memory_bytes
        if kv_cache is None and per_token is not None and tokens is not None:
            kv_cache = exact_kv_bytes(tokens, per_token)
        if weights is not None and kv_cache is not None:
            outside = outside_bytes(model, info, mm, elastic)
            if elastic:
                outside += int(mm.kvcached_idle_gib * GIB)
            footprint = footprint_bytes(weights, overhead, kv_cache, outside)
    elif memory is not None and model.gpu_memory_utilization != "auto" and weights is not None:
        kv_cache = int(model.gpu_memory_utilization * memory) - weights - overhead
    return ModelPlan(
        model=model,
        info=info,
        weights_bytes=weights,
        kv_bytes_per_token=per_token,
        overhead_bytes=overhead,
        tokens=tokens,
        gpu_memory_bytes=memory,
        kv_cache_bytes=kv_cache,
        sizing=sizing,
        footprint_bytes=footprint,
    )


def _plan_cpu(
    models: list[Model], infos: list[ModelInfo | None], sequences: int, start: str
) -> Plan:
    settled = [replace(m, gpus=(0,) if m.gpus == "auto" else m.gpus) for m in models]
    entries = []
    for model, info in zip(settled, infos, strict=True):
        entry = _entry(model, info, sequences, None)
        entries.append(replace(entry, kv_cache_bytes=model.cpu_kvcache_space * GIB))
    warnings = [w for e in entries if (w := _short_of_kv(e, "cpu_kvcache_space"))]
    together = starts_together(settled, start, "cpu")
    return Plan(settled, entries, [], [], warnings, together)


def _short_of_one_sequence(entry: ModelPlan) -> Problem | None:
    if entry.sizing != "fraction":
        return None  # sized in bytes for its sequences; an elastic pool is checked as it is cut
    length = entry.model.max_model_len or (
        entry.info.max_position_embeddings if entry.info else None
    )
    if entry.kv_tokens is None or length is None or entry.kv_tokens >= length:
        return None
    return Problem(
        entry.model.path_of("gpu_memory_utilization"),
        f"{entry.model.gpu_memory_utilization} buys {entry.kv_tokens:,} tokens of KV cache, fewer "
        f"than one sequence of max_model_len ({length:,}): vLLM refuses to start",
    )


def _short_of_kv(entry: ModelPlan, setting: str) -> Problem | None:
    if entry.sizing != "fraction":
        return None
    if entry.kv_tokens is None or entry.tokens is None or entry.kv_tokens >= entry.tokens:
        return None
    return Problem(
        entry.model.path_of(setting),
        f"buys {entry.kv_tokens:,} tokens of KV cache, short of the {entry.tokens:,} that "
        f"max_model_len needs; vLLM refuses to start when one full-length sequence does not fit",
    )


def _plan_cuda(
    manifest: Manifest,
    models: list[Model],
    infos: list[ModelInfo | None],
    gpus: list[GpuSpec],
    sequences: int,
) -> Plan:
    dialect = cuda_dialect(manifest.images.vllm.vllm_ref)
    # The version's memory model; fractions apply to the memory CUDA reports (memory.py).
    mm = memory.for_version(dialect.version)
    memory_of = [int(mm.usable_gib(gpu.memory_gib) * GIB) for gpu in gpus]
    sizings = {m.service: sizing_of(manifest, m, dialect) for m in models}
    problems: list[Problem] = []
    settled: list[Model] = []
    # First settle the fractions of placed models, then place the 'auto' ones.
    for model, info in zip(models, infos, strict=True):
        if _unplannable(model):
            settled.append(model)
            continue
        gpu_memory, gpu = None, None
        if model.gpus != "auto" and all(i < len(memory_of) for i in model.gpus):
            gpu_memory, gpu = min((memory_of[i], gpus[i]) for i in model.gpus)
        sizing = sizings[model.service]
        if sizing != "fraction":
            problem = _unsizable(model, info, sizing)
            if problem:
                problems.append(problem)
        elif model.gpu_memory_utilization == "auto" and model.gpus != "auto":
            fraction, problem = _auto_fraction(model, info, sequences, gpu_memory, mm, gpu)
            if problem:
                problems.append(problem)
            elif fraction:
                model = replace(model, gpu_memory_utilization=fraction)
        settled.append(model)
    placed, placement_problems = _place(
        manifest, settled, infos, memory_of, sequences, mm, gpus, sizings
    )
    problems += placement_problems
    in_bytes = {s for s, sizing in sizings.items() if sizing != "fraction"}
    problems += _over_budget(manifest, models, placed, memory_of, in_bytes)
    if problems:
        return Plan(placed, [], gpus, problems, [])
    entries = []
    for model, info in zip(placed, infos, strict=True):
        assert model.gpus != "auto"
        on = [(memory_of[i], gpus[i]) for i in model.gpus if i < len(memory_of)]
        gpu_memory, gpu = min(on) if on else (None, None)
        entries.append(_entry(model, info, sequences, gpu_memory, mm, gpu, sizings[model.service]))
    if manifest.planner.kv_cache == "elastic":
        entries, pool_problems = _elastic_pools(entries, manifest.planner.gpu_budget, mm)
        problems += pool_problems
    by_hand = {m.service for m in models if m.gpu_memory_utilization != "auto"}
    entries = [_settle_bytes(entry, mm, entry.model.service in by_hand) for entry in entries]
    placed = [entry.model for entry in entries]
    together = starts_together(placed, manifest.planner.start)
    awake = manifest.residency.awake_per_gpu if manifest.residency else None
    problems += _footprints_over_budget(entries, memory_of, manifest.planner.gpu_budget, awake)
    problems += _chained_by_a_fraction(manifest, entries)
    warnings = [
        w
        for e in entries
        if (w := _short_of_kv(e, "gpu_memory_utilization")) and not _short_of_one_sequence(e)
    ]
    # vLLM refuses to start when one sequence of max_model_len does not fit its KV cache.
    problems += [p for e in entries if (p := _short_of_one_sequence(e))]
    budgets = {i: int(manifest.planner.gpu_budget * m) for i, m in enumerate(memory_of)}
    return Plan(placed, entries, gpus, problems, warnings, together, awake, budgets)


def awake_share_bytes(on_gpu: list[ModelPlan], awake_per_gpu: int, budget: int) -> int:
    """With residency, what one awake model of a GPU may hold: the budget less the residue of
    as many sleeping models as there can be (the largest residues), shared by those awake."""
    residues = sorted((e.asleep_bytes or 0 for e in on_gpu), reverse=True)
    asleep = residues[: max(len(on_gpu) - awake_per_gpu, 0)]
    return (budget - sum(asleep)) // min(awake_per_gpu, len(on_gpu))


def _unsizable(model: Model, info: ModelInfo | None, sizing: Sizing) -> Problem | None:
    if info is not None or (sizing == "bytes" and model.kv_cache_memory_bytes is not None):
        return None
    return Problem(
        model.path_of("max_model_len"),
        f"sizing the KV cache in bytes ({sizing}) needs {model.model}'s config.json: none in a "
        "local folder, the Hugging Face cache, the catalog (compose/model-info/) or the hub; "
        "set kv_cache_memory_bytes, or a fraction",
    )


def _settle_bytes(entry: ModelPlan, mm: MemoryModel, fraction_by_hand: bool) -> ModelPlan:
    """A model sized in bytes gets them, and, unless its fraction was set by hand, the fraction
    vLLM's start-up check reads (footprint.init_check_fraction)."""
    model = entry.model
    if entry.sizing == "fraction" or entry.kv_cache_bytes is None:
        return entry
    fraction = model.gpu_memory_utilization
    known = entry.footprint_bytes is not None and entry.gpu_memory_bytes is not None
    if not fraction_by_hand and known:
        assert entry.footprint_bytes is not None and entry.gpu_memory_bytes is not None
        fraction = init_check_fraction(entry.footprint_bytes, entry.gpu_memory_bytes, mm)
    settled = replace(
        model, kv_cache_memory_bytes=entry.kv_cache_bytes, gpu_memory_utilization=fraction
    )
    return replace(entry, model=settled)


def _elastic_pools(
    entries: list[ModelPlan], budget: float, mm: MemoryModel
) -> tuple[list[ModelPlan], list[Problem]]:
    """Each GPU's pool is what the budget leaves after every model's footprint without KV; each
    model may fill all of it, and it must hold one max_model_len sequence of every model."""
    problems = []
    pools: dict[int, int] = {}
    by_gpu: dict[int, list[ModelPlan]] = {}
    for entry in entries:
        assert entry.model.gpus != "auto"
        for index in entry.model.gpus:
            by_gpu.setdefault(index, []).append(entry)
    for index, on_gpu in by_gpu.items():
        memory_bytes = on_gpu[0].gpu_memory_bytes or 0
        idle = sum(_idle_footprint(e, mm) for e in on_gpu)
        one_each = sum((e.kv_bytes_per_token or 0) * _length(e) for e in on_gpu)
        pools[index] = int(budget * memory_bytes) - idle
        if pools[index] < one_each:
            short = (one_each - pools[index]) / GIB
            problems.append(
                Problem(
                    on_gpu[-1].model.path_of("gpu"),
                    f"GPU {index} has no room for an elastic KV pool: "
                    f"{_footprint_terms(on_gpu, mm)} without KV cache, and one max_model_len "
                    f"sequence of each needs {one_each / GIB:.1f} GiB more; short by "
                    f"{short:.1f} GiB within planner.gpu_budget {budget:g}",
                )
            )
    settled = []
    for entry in entries:
        assert entry.model.gpus != "auto"
        pool = min(pools[i] for i in entry.model.gpus)
        kv = kv_bytes_for_pool(pool, entry.kv_bytes_per_token or 0)
        model = replace(entry.model, kv_cache_memory_bytes=kv)
        # Idle, it holds no KV page: the pool is shared, and checked above.
        footprint = _idle_footprint(entry, mm)
        settled.append(replace(entry, model=model, kv_cache_bytes=kv, footprint_bytes=footprint))
    return settled, problems


def _idle_footprint(entry: ModelPlan, mm: MemoryModel) -> int:
    """What an elastic model holds before it holds a token: its footprint less its KV pages."""
    return (entry.footprint_bytes or 0) - (entry.kv_cache_bytes or 0)


def _length(entry: ModelPlan) -> int:
    return entry.model.max_model_len or (
        entry.info.max_position_embeddings
        if entry.info and entry.info.max_position_embeddings
        else 0
    )


def _footprint_terms(entries: list[ModelPlan], mm: MemoryModel) -> str:
    return " + ".join(f"{e.model.service} {_idle_footprint(e, mm) / GIB:.1f}" for e in entries)


def _footprints_over_budget(
    entries: list[ModelPlan], memory: list[int], budget: float, awake_per_gpu: int | None = None
) -> list[Problem]:
    """On a GPU whose models are all sized in bytes, their whole footprints must fit the budget:
    they may start at the same second, and nothing but this check stands between them and an
    out-of-memory. With residency, at most `awake_per_gpu` of them are awake at a time: the
    largest that many, plus what each of the others keeps asleep, must fit."""
    problems = []
    by_gpu: dict[int, list[ModelPlan]] = {}
    for entry in entries:
        assert entry.model.gpus != "auto"
        for index in entry.model.gpus:
            by_gpu.setdefault(index, []).append(entry)
    for index, on_gpu in by_gpu.items():
        if any(e.sizing != "bytes" or e.footprint_bytes is None for e in on_gpu):
            continue  # fractions have their own checks; an elastic pool is checked as it is cut
        held = resident_bytes(on_gpu, awake_per_gpu)
        footprints = {e.model.service: e.footprint_bytes for e in on_gpu}
        total = sum(held.values())
        allowed = budget * memory[index]
        if total <= allowed:
            continue
        awake = awake_per_gpu is not None and awake_per_gpu < len(on_gpu)
        asleep = {s for s, b in held.items() if awake and b != footprints[s]}
        terms = " + ".join(
            f"{s} {held[s] / GIB:.1f}{' asleep' if s in asleep else ''}" for s in held
        )
        what = f"{awake_per_gpu} awake and the others asleep" if awake else "its models"
        problems.append(
            Problem(
                on_gpu[-1].model.path_of("gpu"),
                f"GPU {index} does not hold {what}: {terms} = {total / GIB:.1f} GiB, more "
                f"than planner.gpu_budget {budget:g} x {memory[index] / GIB:.1f} GiB = "
                f"{allowed / GIB:.1f} GiB; short by {(total - allowed) / GIB:.1f} GiB: lower "
                "max_model_len, use fp8 KV cache"
                + (", lower residency.awake_per_gpu" if awake else "")
                + " or move a model",
            )
        )
    return problems


def resident_bytes(on_gpu: list[ModelPlan], awake_per_gpu: int | None) -> dict[str, int]:
    """What each model of a GPU holds there at the worst moment: its whole footprint, or, with
    residency, the largest `awake_per_gpu` footprints and the others' sleeping residue."""
    footprints = {e.model.service: e.footprint_bytes or 0 for e in on_gpu}
    if awake_per_gpu is None or awake_per_gpu >= len(on_gpu):
        return footprints
    largest = sorted(on_gpu, key=lambda e: -(e.footprint_bytes or 0))[:awake_per_gpu]
    awake = {e.model.service for e in largest}
    return {
        e.model.service: footprints[e.model.service]
        if e.model.service in awake
        else (e.asleep_bytes or 0)
        for e in on_gpu
    }


def _chained_by_a_fraction(manifest: Manifest, entries: list[ModelPlan]) -> list[Problem]:
    """planner.start: parallel needs every model of a GPU sized in bytes."""
    if manifest.planner.start != "parallel":
        return []
    return [
        Problem(
            e.model.path_of("gpu_memory_utilization"),
            f"planner.start is 'parallel', but {e.model.service} is sized by its fraction, whose "
            "KV cache depends on what the servers starting beside it hold (vLLM #9198): leave "
            "its fraction 'auto' on vLLM v0.10.2 or later, or start with planner.start: auto",
        )
        for e in entries
        if e.sizing == "fraction"
    ]


def _unplannable(model: Model) -> bool:
    """Its GPU or fraction failed validation: nothing is derived from the default standing in."""
    return bool(model.unchecked & {"gpu", "gpu_memory_utilization"})


def _over_budget(
    manifest: Manifest,
    requested: list[Model],
    placed: list[Model],
    memory: list[int],
    in_bytes: set[str],
) -> list[Problem]:
    """planner.gpu_budget binds every GPU on which the planner sized or placed a model: the
    fractions there, set by hand or not, add up to at most the budget. A GPU whose models are
    all sized in bytes has its footprints checked instead."""
    budget = manifest.planner.gpu_budget
    planned = {m.service for m in requested if _has_auto(m) and not _unplannable(m)}
    problems = []
    for index, sharing in models_by_gpu(placed).items():
        if all(m.service in in_bytes for m in sharing):
            continue
        by_planner = [m for m in sharing if m.service in planned]
        total = fraction_total(sharing)
        if not by_planner or index >= len(memory) or total <= budget + 1e-9:
            continue
        short = (total - budget) * memory[index] / GIB
        problems.append(
            Problem(
                by_planner[-1].path_of("gpu_memory_utilization"),
                f"GPU {index} does not hold what its models need within planner.gpu_budget "
                f"{budget:g}: {fraction_terms(sharing)} = {total:.2f}, short by {short:.1f} GiB "
                f"of {memory[index] / GIB:g} GiB; raise the budget, lower max_model_len, use fp8 "
                "KV cache or move a model",
            )
        )
    return problems


def _auto_fraction(
    model: Model,
    info: ModelInfo | None,
    sequences: int,
    gpu_memory: int | None,
    mm: MemoryModel = V0_8,
    gpu: GpuSpec | None = None,
) -> tuple[float, Problem | None]:
    path = model.path_of("gpu_memory_utilization")
    if info is None:
        return 0.0, Problem(
            path,
            f"'auto' needs {model.model}'s config.json: none in a local folder, the Hugging Face "
            "cache, the catalog (compose/model-info/) or the hub; set a fraction instead",
        )
    if gpu_memory is None:
        return 0.0, None  # the index check reports the missing GPU
    needed = _entry(model, info, sequences, gpu_memory, mm, gpu).fraction_needed
    if needed is None:
        return 0.0, Problem(
            path,
            f"'auto' cannot size {model.model}: no weight files or index were found; set "
            "weights_gib or params_b, or a fraction",
        )
    fraction = _round_up(needed)
    if fraction >= 1:
        return 0.0, Problem(
            path,
            f"{model.service} needs {needed:.2f} of its GPU ({needed * gpu_memory / GIB:.1f} GiB "
            f"of {gpu_memory / GIB:g} GiB): it does not fit; lower max_model_len, use fp8 KV "
            "cache or more GPUs",
        )
    return fraction, None


def _round_up(fraction: float) -> float:
    """Fractions are set in hundredths, rounded up so that what is needed always fits."""
    return math.ceil(fraction * 100) / 100


def _place(
    manifest: Manifest,
    models: list[Model],
    infos: list[ModelInfo | None],
    memory: list[int],
    sequences: int,
    mm: MemoryModel = V0_8,
    gpus: list[GpuSpec] | None = None,
    sizings: dict[str, Sizing] | None = None,
) -> tuple[list[Model], list[Problem]]:
    """Best-fit decreasing: the biggest model first, onto the GPU it leaves least room on. A
    model sized in bytes needs its whole footprint."""
    sizings = sizings or {}
    budget = manifest.planner.gpu_budget
    used = [0.0] * len(memory)
    count = [0] * len(memory)
    for index, sharing in models_by_gpu(models).items():
        if index < len(memory):
            used[index] = fraction_total(sharing)
            count[index] = len(sharing)
    waiting = [(i, m) for i, m in enumerate(models) if m.gpus == "auto" and not _unplannable(m)]
    needs: dict[int, int] = {}
    problems = []
    for position, model in waiting:
        info = infos[position]
        sizing = sizings.get(model.service, "fraction")
        need = _needed_bytes(model, info, sequences, mm, gpus[0] if gpus else None, sizing)
        if need is None and model.gpu_memory_utilization != "auto" and memory:
            need = int(float(model.gpu_memory_utilization) * max(memory))
        if need is None:
            problems.append(
                Problem(
                    model.path_of("gpu"),
                    f"'auto' placement needs {model.model}'s size: no config.json was found; "
                    "set a gpu index",
                )
            )
        else:
            needs[position] = need

    def room(index: int) -> float:
        """Fraction of GPU `index` still free for one more server, within the budget and the
        headroom every server's CUDA context takes."""
        eager = all(m.enforce_eager for m in models)
        safe = safe_fraction_total(
            count[index] + 1, memory[index] / GIB + mm.reserved_gib, mm.outside_gib(eager), mm
        )
        return min(budget, safe) - used[index]

    placed = list(models)
    for position, model in sorted(waiting, key=lambda item: -needs.get(item[0], 0)):
        if position not in needs:
            continue
        best: tuple[float, int, float] | None = None
        for index, total in enumerate(memory):
            fraction = model.gpu_memory_utilization
            if fraction == "auto":
                fraction = _round_up(needs[position] / total)
            left = room(index)
            if fraction <= left + 1e-9 and (best is None or left - fraction < best[0]):
                best = (left - fraction, index, fraction)
        if best is None:
            free = max((room(i) * total for i, total in enumerate(memory)), default=0)
            problems.append(
                Problem(
                    model.path_of("gpu"),
                    f"{model.service} fits on no GPU: it needs {needs[position] / GIB:.1f} GiB, "
                    f"the most left on one is {max(free, 0) / GIB:.1f} GiB (short by "
                    f"{(needs[position] - max(free, 0)) / GIB:.1f} GiB)",
                )
            )
            continue
        _, index, fraction = best
        used[index] += fraction
        count[index] += 1
        placed[position] = replace(model, gpus=(index,), gpu_memory_utilization=fraction)
    return placed, problems


def _needed_bytes(
    model: Model,
    info: ModelInfo | None,
    sequences: int,
    mm: MemoryModel = V0_8,
    gpu: GpuSpec | None = None,
    sizing: Sizing = "fraction",
) -> int | None:
    if info is None:
        return None
    entry = _entry(replace(model, gpus=(0,)), info, sequences, None, mm, gpu, sizing)
    return entry.footprint_bytes if sizing == "bytes" else entry.needed_bytes
