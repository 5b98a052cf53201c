"""KV caches sized in bytes, and what each server holds on its GPU as `nvidia-smi` shows it.

From vLLM v0.10.2, `--kv-cache-memory-bytes N` gives a server exactly N bytes of KV cache, not
sized from a memory profile that co-located servers starting at the same time disturb (vLLM
#9198). Models sized so can start together; the planner alone then stands between the GPU and an
out-of-memory at start, so it predicts each server's whole footprint (`footprint_bytes`) and
requires the sum on a GPU to fit planner.gpu_budget.

Sizing, per model (`sizing_of`):
- `bytes`: the ref takes the flag and the fraction is 'auto' (or the bytes are set by hand): the
  KV cache holds max_model_len x full_length_sequences tokens, rounded up to whole blocks, plus
  the block vLLM's V1 block pool keeps aside as its null block;
- `elastic`: kvcached maps KV pages on demand: each model's KV capacity is the GPU's pool (what
  the budget leaves after every model's footprint without KV), and the pool must hold one
  max_model_len sequence of every model at once;
- `fraction`: today's `--gpu-memory-utilization` sizing, refs before v0.10.2 or a fraction set by
  hand.

vLLM still checks at start that free memory >= fraction x total (`request_memory`), so a server
sized in bytes gets as fraction its own footprint, less the CUDA context it already holds when it
checks, rounded down (`init_check_fraction`): while the plan fits the budget, the GPU always has
that much free, whatever its neighbours have loaded by then.
"""

from __future__ import annotations

import math
from typing import Literal

from arenastack.manifest import Manifest, Model
from arenastack.plan.dialect import Dialect
from arenastack.plan.memory import GIB, MemoryModel

Sizing = Literal["fraction", "bytes", "elastic"]
KV_FLAG = "--kv-cache-memory-bytes"
# vLLM's default block size on CUDA, in tokens; its V1 block pool keeps one block as the null
# block, which no request can use.
BLOCK_TOKENS = 16
NULL_BLOCKS = 1


def sizing_of(manifest: Manifest, model: Model, dialect: Dialect) -> Sizing:
    if manifest.device != "cuda":
        return "fraction"
    if manifest.planner.kv_cache == "elastic":
        return "elastic"
    if dialect.has(KV_FLAG) and (
        model.kv_cache_memory_bytes is not None or model.gpu_memory_utilization == "auto"
    ):
        return "bytes"
    return "fraction"


def exact_kv_bytes(tokens: int, bytes_per_token: int) -> int:
    """Whole blocks for `tokens`, plus the null block."""
    blocks = math.ceil(tokens / BLOCK_TOKENS) + NULL_BLOCKS
    return blocks * BLOCK_TOKENS * bytes_per_token


def kv_bytes_for_pool(pool: int, bytes_per_token: int) -> int:
    """A model's share of an elastic pool, in whole blocks."""
    block = BLOCK_TOKENS * bytes_per_token
    return max(0, pool) // block * block


def footprint_bytes(weights: int, overhead: int, kv: int, outside: int) -> int:
    """What the server's processes hold on the GPU once it is up (nvidia-smi): weights, the
    profile's peak and non-torch memory and graphs inside the fraction (`overhead`), the KV
    cache, and what lies outside the fraction (`outside`: CUDA context, graphs of the V2 runner,
    what is allocated after profiling; memory.footprint_outside_bytes)."""
    return weights + overhead + kv + outside


def init_check_fraction(footprint: int, usable: int, mm: MemoryModel) -> float:
    """The fraction vLLM's start-up check reads: the footprint less the CUDA context the server
    already holds when it checks, in hundredths, rounded down (at least 0.01)."""
    share = (footprint - mm.own_context_gib * GIB) / usable
    return max(0.01, math.floor(share * 100) / 100)
