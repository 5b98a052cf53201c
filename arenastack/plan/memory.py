"""How a vLLM instance spends its GPU, per vLLM version: inside its fraction and outside it.

The checks (a warning when a GPU is nearly full) and the planner (the KV cache a fraction buys, and
how much room is left for one more server) both use this.

Two memory models, chosen by the version the image runs (`for_version`):

- **v0.8 (V0 engine)**, for refs before v0.10: the planner's original model. Not calibrated on a
  GPU: v0.8.2 needs torch 2.6, which the lent GPU machine lacks. Its activation figure agrees
  with the 1.26 GiB vLLM logged for Llama 3 8B at 8192 tokens (vLLM PR #10511).
- **v0.24 (V1 engine)**, for v0.10 and later: calibrated on vLLM 0.24.0 on one H100 80GB HBM3
  (driver 580, torch 2.11.0+cu130), 2026-11-25, from vLLM's own DEBUG profile ("torch peak memory
  increase", "non-torch forward increase memory", CUDA graph memory) and `nvidia-smi`, with
  dummy weights of the seed models' real shapes (docs/planner.md). Versions other than
  0.24.0 are not calibrated: the model is carried over from 0.24.0 unchanged.

What the V1 engine of 0.24 does (read in its source, then measured):
- The fraction is of the memory CUDA reports, 0.47 GiB less than NVML's total on the H100
  (79.18 of 79.65 GiB): DRIVER_RESERVED_GIB.
- It profiles one batch of `max_num_batched_tokens` tokens (chunked prefill is always on), not
  max_model_len, split into `max_num_seqs` requests, then runs the sampler on that many rows of
  logits. Both defaults depend on the GPU (vllm/engine/arg_utils.py, `get_batch_defaults`): 8192
  tokens and 1024 sequences on GPUs of 70 GiB or more other than A100, else 2048 and 256.
- Its torch peak is the larger of the forward pass and the sampler. The sampler of the V1 model
  runner holds about 14.6 bytes per logit (float32 logits, probabilities, top-k/top-p buffers):
  with Gemma's 256,000-token vocabulary and 1024 sequences that is 3.63 GiB, which is why the
  seed's gemma at 0.27 does not start on 0.24. The V2 model runner (its default for Llama,
  Mistral, Qwen3 and a few more architectures) showed no sampler peak above its forward pass.
- torch.compile (CUDA graphs on, no --enforce-eager) raised Llama's forward peak by 25 %.
- CUDA graphs: the V1 runner estimates their memory and takes it from the KV cache (inside the
  fraction, 0.54 GiB estimated for Gemma 7B); the V2 runner does not, and its graphs (0.98 GiB for
  Llama 3 8B) lie outside the fraction.
- Outside the fraction each server also holds its CUDA context (0.51 GiB as vLLM measured it) and
  allocations made after profiling: measured per server 0.60-1.24 GiB eager, 0.84-2.07 GiB with
  CUDA graphs. A later server on the same GPU finds that memory taken when it checks free memory
  >= total x fraction at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30

# What one vLLM instance holds on its GPU outside its own fraction in the v0.8 model: its CUDA
# context, created before vLLM takes its memory snapshot. Measured 0.61 GiB (torch 2.11,
# CUDA 13.0, driver 580, H100; tests/gpu); the allowance leaves room for other stacks.
CUDA_CONTEXT_GIB = 0.75
# NVML's total minus what CUDA reports as total (cudaMemGetInfo): 81,559 - 81,079 MiB on the H100
# (driver 580). vLLM's fractions are of the latter.
DRIVER_RESERVED_GIB = 0.47

Version = tuple[int, int, int]
# What an elastic server (kvcached 0.1.6, the V1 runner) held idle beyond its footprint without
# KV cache: 0.58-1.36 GiB on three shapes on the lent H200; the largest, rounded up.
KVCACHED_IDLE_GIB = 1.45


@dataclass(frozen=True)
class MemoryModel:
    name: str
    calibration: str  # where the figures come from; "" when uncalibrated
    non_torch_gib: float  # allocations outside torch during profiling, inside the fraction
    # The forward pass's peak per profiled token: (hidden × a + intermediate × b) × dtype bytes.
    forward_hidden: float
    forward_intermediate: float
    compiled_forward_factor: float  # torch.compile's extra on the forward peak
    sampler_bytes_per_logit: float  # × max_num_seqs × vocab
    sampler_fixed_gib: float
    sampler_stacks_on_forward: bool  # V0: forward + sampler; V1: the larger of the two
    graphs_inside_gib: float  # CUDA graph memory taken from the fraction when graphs are on
    outside_eager_gib: float  # held outside the fraction per server, CUDA context included
    outside_graphs_gib: float
    profiles_max_model_len: bool  # V0 profiles max_model_len tokens; V1 max_num_batched_tokens
    # The starting server's own CUDA context, already taken when it checks free memory.
    own_context_gib: float = 0.0
    v2_runner_architectures: frozenset[str] = frozenset()  # no sampler peak, graphs outside
    # What a server holds beyond its profile's peak, weights and KV cache, as nvidia-smi shows it
    # (CUDA context, CUDA graphs, buffers allocated after profiling), per model runner, with
    # CUDA graphs on: a fixed part, plus per MLP width (V1 runner) or per max_model_len token
    # and layer (V2 runner). Fitted on the lent H200 (footprint_outside_bytes).
    outside_v1_gib: float = 0.0
    outside_v1_per_intermediate_gib: float = 0.0
    outside_v2_gib: float = 0.0
    outside_v2_per_token_layer_gib: float = 0.0
    # Measured peaks above the formula, per architecture, inside the fraction.
    architecture_extra_gib: tuple[tuple[str, float], ...] = ()
    # What kvcached maps for a server before it holds a token (planner.kv_cache: elastic).
    kvcached_idle_gib: float = 0.0

    @property
    def reserved_gib(self) -> float:
        """What the GPU's NVML total holds that CUDA does not report (the v0.8 model ignores it)."""
        return DRIVER_RESERVED_GIB if self.calibration else 0.0

    def usable_gib(self, gpu_memory_gib: float) -> float:
        """The total the fraction applies to."""
        return gpu_memory_gib - self.reserved_gib

    def batch_defaults(self, gpu_memory_gib: float, compute_capability: str) -> tuple[int, int]:
        """(max_num_seqs, max_num_batched_tokens) vLLM picks for its OpenAI server."""
        if self.profiles_max_model_len:
            return 256, 0
        # vLLM asks for 70 GiB of total memory and a device name without "a100"; compute
        # capability 8.0 stands in for the name (A100, A800, A30).
        if gpu_memory_gib >= 70 and compute_capability != "8.0":
            return 1024, 8192
        return 256, 2048

    def outside_gib(self, enforce_eager: bool) -> float:
        return self.outside_eager_gib if enforce_eager else self.outside_graphs_gib


V0_8 = MemoryModel(
    name="v0.8 (V0 engine)",
    calibration="",
    non_torch_gib=1.0,
    forward_hidden=4,
    forward_intermediate=2,
    compiled_forward_factor=1.0,
    sampler_bytes_per_logit=16,
    sampler_fixed_gib=0.0,
    sampler_stacks_on_forward=True,
    graphs_inside_gib=0.5,
    outside_eager_gib=CUDA_CONTEXT_GIB,
    outside_graphs_gib=CUDA_CONTEXT_GIB,
    profiles_max_model_len=True,
)

V0_24 = MemoryModel(
    name="v0.24 (V1 engine)",
    calibration="vLLM 0.24.0 on an H100 80GB HBM3, 2026-11-25 (docs/planner.md)",
    non_torch_gib=0.22,
    forward_hidden=2.8,
    forward_intermediate=3.4,
    compiled_forward_factor=1.25,
    sampler_bytes_per_logit=14.63,
    sampler_fixed_gib=0.06,
    sampler_stacks_on_forward=False,
    graphs_inside_gib=0.55,
    # The largest measured per server (Llama 3 8B on the V2 runner), rounded up.
    outside_eager_gib=1.3,
    outside_graphs_gib=2.1,
    profiles_max_model_len=False,
    own_context_gib=0.51,
    # The footprint of a server sized in bytes, fitted on seven shapes on the lent H200,
    # 2026-12-02 (tools/gpu/calibration/): each plan within 1.5 % above nvidia-smi's figure.
    outside_v1_gib=0.45,
    outside_v1_per_intermediate_gib=4.0e-5,
    outside_v2_gib=1.5,
    outside_v2_per_token_layer_gib=6.61e-7,
    # Qwen3 8B's KV cache came out 0.31 GiB short of the formula at a fraction (40,704 tokens
    # against 42,938), and its footprint 0.3 GiB above the Llama shapes'.
    architecture_extra_gib=(("Qwen3ForCausalLM", 0.31),),
    kvcached_idle_gib=KVCACHED_IDLE_GIB,
    # vllm/config/vllm.py DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES of 0.24.0.
    v2_runner_architectures=frozenset(
        {
            "Qwen3ForCausalLM",
            "DeepseekV2ForCausalLM",
            "Qwen2MoeForCausalLM",
            "GraniteMoeForCausalLM",
            "LlamaForCausalLM",
            "MistralForCausalLM",
        }
    ),
)

CALIBRATED_VERSIONS = {(0, 24, 0)}


def for_version(version: Version) -> MemoryModel:
    return V0_8 if version < (0, 10, 0) else V0_24


def overhead_bytes(
    memory_model: MemoryModel,
    *,
    hidden: int,
    intermediate: int,
    vocab: int,
    dtype_bytes: int,
    max_model_len: int,
    tensor_parallel: int,
    enforce_eager: bool,
    architectures: tuple[str, ...],
    gpu_memory_gib: float,
    compute_capability: str,
    v2_runner_allowed: bool = True,
) -> int:
    """What a server takes inside its fraction besides weights and KV cache: allocations outside
    torch, the peak of vLLM's profiling run (forward pass, sampler) and CUDA graphs.
    `v2_runner_allowed` is false where the V2 model runner is turned off (kvcached)."""
    mm = memory_model
    sequences, batched_tokens = mm.batch_defaults(gpu_memory_gib, compute_capability)
    # V0 profiles one batch of max_model_len tokens (at least 2048), chunking above 32K; V1 one
    # batch of max_num_batched_tokens.
    low_high = min(max(max_model_len, 2048), 32768)
    tokens = low_high if mm.profiles_max_model_len else batched_tokens
    per_token = (mm.forward_hidden * hidden + mm.forward_intermediate * intermediate) * dtype_bytes
    forward = tokens * per_token / tensor_parallel
    if not enforce_eager:
        forward *= mm.compiled_forward_factor
    v2_runner = v2_runner_allowed and any(a in mm.v2_runner_architectures for a in architectures)
    sampler = 0.0
    if not v2_runner:
        sampler = sequences * vocab * mm.sampler_bytes_per_logit + mm.sampler_fixed_gib * GIB
    peak = forward + sampler if mm.sampler_stacks_on_forward else max(forward, sampler)
    graphs = 0.0 if enforce_eager or v2_runner else mm.graphs_inside_gib
    extra = max(
        (gib for arch, gib in mm.architecture_extra_gib if arch in architectures), default=0
    )
    return int(peak + (mm.non_torch_gib + graphs + extra) * GIB)


def footprint_outside_bytes(
    memory_model: MemoryModel,
    *,
    intermediate: int,
    layers: int,
    max_model_len: int,
    enforce_eager: bool,
    architectures: tuple[str, ...],
    v2_runner_allowed: bool = True,
) -> int:
    """What a server holds outside its profile, weights and KV cache, as nvidia-smi shows it:
    its CUDA context, its CUDA graphs (inside the fraction on the V1 runner, outside on the V2
    runner) and what it allocates after profiling. With CUDA graphs, fitted on the lent H200
    (docs/planner.md): the V1 runner's grows with the MLP's width, the V2 runner's with
    max_model_len x layers. Eager servers keep the chain bound's per-server figure."""
    mm = memory_model
    if enforce_eager or not mm.outside_v2_gib:
        return int(mm.outside_gib(enforce_eager) * GIB)
    v2_runner = v2_runner_allowed and any(a in mm.v2_runner_architectures for a in architectures)
    if v2_runner:
        gib = mm.outside_v2_gib + mm.outside_v2_per_token_layer_gib * max_model_len * layers
    else:
        gib = mm.outside_v1_gib + mm.outside_v1_per_intermediate_gib * intermediate
    return int(gib * GIB)


def safe_fraction_total(
    servers: int,
    gpu_memory_gib: float,
    outside_gib: float = CUDA_CONTEXT_GIB,
    memory_model: MemoryModel = V0_8,
) -> float:
    """The most the fractions on one GPU may add up to so that the last of `servers` chained
    instances still passes vLLM's start-up check (free ≥ total × fraction): every earlier one
    holds `outside_gib` beyond its fraction, and the starting one its own CUDA context."""
    usable = memory_model.usable_gib(gpu_memory_gib)
    return 1.0 - ((servers - 1) * outside_gib + memory_model.own_context_gib) / usable
