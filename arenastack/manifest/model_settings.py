"""What one model sets: a `models.<service>` entry, and the `defaults` block that every entry
inherits."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from arenastack.manifest.fields import (
    HUB_ID_PATTERN,
    LOCAL_PATH_PREFIXES,
    EnvName,
    FractionOrAuto,
    GpuSelection,
    NonEmptyStr,
    Port,
    PositiveInt,
    Strict,
)


class ModelSettings(Strict):
    """Settings that a model entry or the `defaults` block may set."""

    gpu: GpuSelection | None = Field(
        None,
        description="GPU index the server runs on, or a list of indices for tensor parallelism "
        "(its length is --tensor-parallel-size), or 'auto' to let the planner place it. On "
        "`device: cpu` it names a start slot: models that share one start one after another. "
        "Default 0.",
    )
    gpu_memory_utilization: FractionOrAuto | None = Field(
        None,
        description="--gpu-memory-utilization: share of each of its GPUs' TOTAL memory this "
        "server may take (weights, activations and KV cache), or 'auto' for the smallest share "
        "that holds max_model_len tokens of KV cache. Default 'auto'.",
    )
    kv_cache_memory_bytes: PositiveInt | None = Field(
        None,
        description="--kv-cache-memory-bytes: the KV cache in bytes, set by hand (vLLM v0.10.2 "
        "and later), instead of what the fraction leaves. Default: the planner's, exactly what "
        "max_model_len needs, wherever the fraction is 'auto' (planner.kv_cache).",
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = Field(
        None, description="--dtype of weights and activations. Default 'auto' (bfloat16 on CPU)."
    )
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] | None = Field(
        None, description="--kv-cache-dtype; fp8 halves the KV cache of a 16-bit model."
    )
    max_model_len: PositiveInt | None = Field(
        None, description="--max-model-len: longest prompt + completion, in tokens."
    )
    enforce_eager: bool | None = Field(
        None,
        description="--enforce-eager: no CUDA graphs (less memory, slower decoding). Default "
        "false on CUDA, true on CPU.",
    )
    trust_remote_code: bool | None = Field(
        None, description="--trust-remote-code: run the model repository's own Python code."
    )
    extra_args: list[NonEmptyStr] | None = Field(
        None,
        description="More vLLM arguments, passed verbatim after the generated ones. In "
        "`defaults` they come first, then the model's own.",
    )
    env: dict[EnvName, str | None] | None = Field(
        None,
        description="Environment of the server container. A null value passes the variable by "
        "name from the host's environment or .env (the way to give secrets). Merged with "
        "`defaults.env`, the model's own value winning.",
    )
    enabled: bool | None = Field(None, description="false leaves the model out. Default true.")
    system_prompt: str | None = Field(
        None,
        description="System prompt the web UI sends with every conversation. Default none: the "
        "model's own chat template decides.",
    )
    shm_size: Annotated[str, Field(pattern=r"^[0-9]+[bkmg]?$")] | None = Field(
        None,
        description="Shared memory of the container (compose shm_size). Default 8g (CUDA), "
        "2g (CPU).",
    )
    cpu_kvcache_space: PositiveInt | None = Field(
        None,
        description="GiB of KV cache on `device: cpu` (VLLM_CPU_KVCACHE_SPACE). Default 1.",
    )
    weights_gib: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="Planner hint when the model's files are not at hand: weight bytes in GiB.",
    )
    params_b: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="Planner hint when the model's files are not at hand: billions of "
        "parameters (weights = params × dtype bytes).",
    )


class ModelEntry(ModelSettings):
    """One model: one vLLM server, one compose service named by its key in `models`."""

    model: NonEmptyStr = Field(
        description="Hugging Face hub id (`org/name`), or a local directory: a path starting "
        "with /, ./, ../ or ~, relative to the manifest's folder, mounted read-only.",
    )
    served_model_name: NonEmptyStr | None = Field(
        None,
        description="--served-model-name: the name clients ask for. Default: the hub id, or the "
        "service name for a local directory.",
    )
    display_name: NonEmptyStr | None = Field(
        None, description="Name shown in the web UI. Default: the service name."
    )
    port: Port | None = Field(
        None, description="Host port for this server's OpenAI API. Default: not published."
    )

    @field_validator("model")
    @classmethod
    def _hub_id_or_path(cls, value: str) -> str:
        if value.startswith(LOCAL_PATH_PREFIXES) or re.match(HUB_ID_PATTERN, value):
            return value
        raise ValueError(
            f"{value!r} is neither a hub id like 'org/name' nor a local path "
            "(local paths start with /, ./, ../ or ~)"
        )
