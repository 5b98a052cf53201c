"""The GPUs a stack runs on (`gpus`: read with NVML, or declared) and how the planner shares them
(`planner`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, PlainValidator, TypeAdapter, WithJsonSchema

from arenastack.manifest.fields import PositiveInt, Strict


class GpuSpec(Strict):
    memory_gib: Annotated[float, Field(gt=0)] = Field(description="Total memory in GiB.")
    compute_capability: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+$")] = Field(
        description="CUDA compute capability, e.g. '8.0' (A100), '9.0' (H100)."
    )
    name: str | None = Field(None, description="Informational, e.g. 'NVIDIA A100-SXM4-80GB'.")


GPU_SHORTHAND = re.compile(r"^([0-9]+)x([0-9]+(?:\.[0-9]+)?)@([0-9]+\.[0-9]+)$")


def parse_gpu_shorthand(text: str) -> list[GpuSpec]:
    """`2x80@8.0` is two GPUs of 80 GiB with compute capability 8.0; groups join with commas."""
    gpus: list[GpuSpec] = []
    for group in text.split(","):
        match = GPU_SHORTHAND.match(group.strip())
        if not match:
            raise ValueError(
                f"{group.strip()!r} is not COUNTxGIB@CAPABILITY "
                "(e.g. 2x80@8.0 or 1x80@8.0,1x24@8.9)"
            )
        count, memory, capability = match.groups()
        gpus += [
            GpuSpec(memory_gib=float(memory), compute_capability=capability)
            for _ in range(int(count))
        ]
    if not gpus:
        raise ValueError("declares no GPU")
    return gpus


def _gpus(value: object) -> str | tuple[GpuSpec, ...]:
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        return tuple(parse_gpu_shorthand(value))
    if isinstance(value, list) and value:
        return tuple(_GPU_LIST.validate_python(value))
    raise ValueError(
        f"{value!r} is not 'auto', a shorthand like '2x80@8.0', or a list of "
        "{memory_gib, compute_capability}"
    )


_GPU_LIST = TypeAdapter(list[GpuSpec])

GpuInventorySetting = Annotated[
    str | tuple[GpuSpec, ...],
    PlainValidator(_gpus),
    WithJsonSchema(
        {
            "anyOf": [
                {"const": "auto"},
                {"type": "string", "pattern": r"^[0-9]+x[0-9.]+@[0-9]+\.[0-9]+(,.*)?$"},
                {"type": "array", "items": GpuSpec.model_json_schema(), "minItems": 1},
            ]
        }
    ),
]


class Planner(Strict):
    full_length_sequences: PositiveInt = Field(
        1,
        description="How many sequences of max_model_len tokens each model's KV cache must hold "
        "at once when its fraction is 'auto'. --sequences on the command line wins.",
    )
    gpu_budget: Annotated[float, Field(gt=0, le=1)] = Field(
        0.95,
        description="Most of a GPU's memory that fractions placed or computed by the planner may "
        "add up to; the rest is for CUDA contexts and fragmentation.",
    )
    online: bool = Field(
        True,
        description="Let the planner read config.json and safetensors metadata from the hub "
        "when a model is not in a local folder, the local cache or the catalog.",
    )
    kv_cache: Literal["exact", "elastic"] = Field(
        "exact",
        description="'exact': on vLLM v0.10.2 and later, every model whose fraction is 'auto' "
        "gets exactly the KV cache max_model_len x full_length_sequences needs, in bytes "
        "(--kv-cache-memory-bytes), sized without vLLM's memory profile; the others keep their "
        "fractions. 'elastic': kvcached in the vLLM image maps KV-cache pages on demand, so the "
        "models of a GPU share one pool and an idle one holds none (CUDA, vLLM v0.9.2 and "
        "later).",
    )
    start: Literal["auto", "parallel", "chain"] = Field(
        "auto",
        description="How models that share a GPU start. 'auto': together where every one of "
        "them has its KV cache sized in bytes (exact or elastic), one after another (each "
        "waiting for the previous one to be healthy) where any has a fraction, whose size "
        "depends on what its neighbours hold. 'parallel' or 'chain' for every GPU. On "
        "device: cpu, 'auto' keeps each start slot a chain and 'parallel' starts it together.",
    )
