"""The model manifest: a strict pydantic model of the YAML file a user writes.

Per-model field names are vLLM's command-line flags in snake_case (`gpu_memory_utilization` is
`--gpu-memory-utilization`), so a manifest reads like the commands it becomes. Unknown keys are
errors: a typo must not silently fall back to a default.

`load_manifest` returns the validated `Manifest`; `resolve_models` applies the `defaults` block
and the built-in defaults and returns one `Model` per enabled entry, which every later step uses.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from arenastack.core import serialize
from arenastack.core.problems import ManifestError, Problem, field_path

# A compose service name that is also a DNS label, so services reach each other by name.
SERVICE_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Hugging Face hub ids: `org/name` or a bare legacy name such as `gpt2`.
HUB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
LOCAL_PATH_PREFIXES = ("/", "./", "../", "~")
# An experiment names a folder on the logs volume: no path separators, no leading dot.
EXPERIMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"

# The newest vLLM release that builds with the CUDA 12.3 toolkit of the NGC PyTorch 24.01 image
# and serves the seed's five models: v0.8.3 dropped the DeciLM-7B implementation (vLLM #15008).
# The compatibility matrix in docs/images.md says more.
DEFAULT_VLLM_REF = "v0.8.2"
# A release tag, as PyPI names the version: v0.8.2, v0.6.3.post1.
RELEASE_REF = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+(\.post[0-9]+)?$")
DEFAULT_CUDA_BASE_IMAGE = "nvcr.io/nvidia/pytorch:24.01-py3"
DEFAULT_SLIM_BASE_IMAGE = "python:3.11-slim-bookworm"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- scalar types with one clear message each (a plain union would report every branch) ---------


def _fraction_or_auto(value: object) -> float | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is neither a fraction in (0, 1) nor 'auto'")
    if not 0 < value < 1:
        raise ValueError(
            f"{value} is outside (0, 1): it is the share of the GPU's total memory vLLM may use"
        )
    return float(value)


FractionOrAuto = Annotated[
    float | str,
    PlainValidator(_fraction_or_auto),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                {"const": "auto"},
            ]
        }
    ),
]


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _gpu_selection(value: object) -> int | tuple[int, ...] | str:
    if value == "auto":
        return "auto"
    if _is_index(value):
        assert isinstance(value, int)
        return value
    if isinstance(value, list) and value and all(_is_index(i) for i in value):
        return tuple(value)
    raise ValueError(
        f"{value!r} is not a GPU index, a non-empty list of indices (tensor parallel) or 'auto'"
    )


GpuSelection = Annotated[
    int | tuple[int, ...] | str,
    PlainValidator(_gpu_selection),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                {"const": "auto"},
            ]
        }
    ),
]

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]


# --- per-model settings ----------------------------------------------------------------------


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


# --- stack-wide blocks -----------------------------------------------------------------------


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


class VllmImage(Strict):
    source: Literal["git", "wheel"] = Field(
        "git",
        description="How the CUDA image gets vLLM: 'git' compiles vllm_ref from source for "
        "cuda_arch_list (images/vllm); 'wheel' installs the released vllm==<vllm_ref> wheel and "
        "its pinned torch, no compilation, every architecture of the release (images/vllm-wheel). "
        "Ignored on CPU.",
    )
    base_image: NonEmptyStr | None = Field(
        None,
        description="BASE_IMAGE build arg. Default nvcr.io/nvidia/pytorch:24.01-py3 (CUDA) or "
        "python:3.11-slim-bookworm (CPU).",
    )
    vllm_ref: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")] = Field(
        DEFAULT_VLLM_REF,
        description="vLLM git ref built into the CUDA image (tag, branch or commit). It also "
        "picks the flag dialect of the generated commands. Ignored on CPU, where the version is "
        "the one pinned in images/vllm-cpu/requirements.txt.",
    )
    cuda_arch_list: Annotated[
        str, Field(pattern=r"^(auto|[0-9]+\.[0-9]+(\+PTX)?( [0-9]+\.[0-9]+(\+PTX)?)*)$")
    ] = Field(
        "auto",
        description="TORCH_CUDA_ARCH_LIST the kernels are compiled for, e.g. '8.0 9.0'; 'auto' "
        "takes the compute capabilities of the GPUs in the inventory.",
    )
    tag: (
        Annotated[
            str, Field(pattern=r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$")
        ]
        | None
    ) = Field(None, description="Image tag. Default derived from device, ref and arch list.")
    max_jobs: PositiveInt | None = Field(None, description="MAX_JOBS build arg (compile jobs).")
    nvcc_threads: PositiveInt | None = Field(None, description="NVCC_THREADS build arg.")

    @model_validator(mode="after")
    def _wheel_needs_a_release(self) -> VllmImage:
        if self.source == "wheel" and not RELEASE_REF.match(self.vllm_ref):
            raise ValueError(
                f"source 'wheel' installs a released vLLM: vllm_ref must be a release tag such as "
                f"v0.8.2, not {self.vllm_ref!r}"
            )
        return self


class FastChatImage(Strict):
    base_image: NonEmptyStr = Field(
        DEFAULT_SLIM_BASE_IMAGE, description="BASE_IMAGE build arg of the FastChat image."
    )
    tag: Annotated[
        str, Field(pattern=r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$")
    ] = Field("arenastack/fastchat:0.2.36", description="Image tag of the controller and web UI.")


class Images(Strict):
    vllm: VllmImage = VllmImage()
    fastchat: FastChatImage = FastChatImage()


class Controller(Strict):
    port: Port | None = Field(
        None, description="Host port of the FastChat controller. Default: not published."
    )
    dispatch_method: Literal["lottery", "shortest_queue"] = Field(
        "shortest_queue", description="--dispatch-method of fastchat.serve.controller."
    )


class WebUI(Strict):
    mode: Literal["multi", "single"] = Field(
        "multi",
        description="'multi': gradio_web_server_multi (arena battle, side-by-side, direct chat); "
        "'single': gradio_web_server (direct chat).",
    )
    port: Port = Field(7860, description="Host port of the web UI.")
    bind_address: str | None = Field(
        None, description="Host address the web UI port binds to. Default: `bind_address`."
    )
    share: bool = Field(
        False, description="--share: publish the UI through a public gradio.live link."
    )
    concurrency_count: PositiveInt = Field(10, description="--concurrency-count of the UI.")
    title: NonEmptyStr | None = Field(
        None, description="Heading of the arena page. Default: 'Arena: <experiment>'."
    )
    description: str | None = Field(
        None,
        description="Markdown under the heading: what this experiment compares. Default: the "
        "number of models and where the leaderboard is.",
    )

    @field_validator("bind_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _ip_address(value)


class Gateway(Strict):
    enabled: bool = Field(
        False,
        description="Add a LiteLLM proxy: one OpenAI-compatible endpoint over every model, each "
        "reachable by its served_model_name and by its display_name, behind a key "
        "(LITELLM_MASTER_KEY from the shell or .env).",
    )
    port: Port = Field(4000, description="Host port of the gateway's OpenAI API.")
    bind_address: str | None = Field(
        None, description="Host address the gateway port binds to. Default: `bind_address`."
    )
    build: bool = Field(
        False,
        description="true builds the image here from PyPI's litellm[proxy] (images/litellm), "
        "for hosts without a registry; false pulls LiteLLM's official image of the same version.",
    )
    base_image: NonEmptyStr = Field(
        DEFAULT_SLIM_BASE_IMAGE, description="BASE_IMAGE build arg when `build` is true."
    )
    tag: (
        Annotated[
            str, Field(pattern=r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$")
        ]
        | None
    ) = Field(
        None,
        description="Image tag. Default ghcr.io/berriai/litellm:main-v1.108.7, or "
        "arenastack/litellm:1.108.7 when `build` is true.",
    )
    keys_file: NonEmptyStr | None = Field(
        None,
        description="YAML file of per-user keys, `{user: key}`, relative to the manifest's "
        "folder; mounted read-only and read at each request, so users are added without a "
        "restart. Each key is accepted beside the master key. Default: the master key only. "
        "On Kubernetes the gateway reads it from the Secret `gateway-keys` (key `keys.yaml`) "
        "that you create from this file.",
    )
    request_timeout: PositiveInt = Field(
        600,
        description="Seconds the gateway waits for one model's answer before it fails the "
        "request; a model that is down fails at once.",
    )

    @field_validator("bind_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _ip_address(value)


class LeaderboardSettings(Strict):
    enabled: bool = Field(
        True,
        description="Run the leaderboard service and show its tab in the web UI (mode 'multi').",
    )
    bothbad: Literal["tie", "exclude"] = Field(
        "tie",
        description="A 'both are bad' vote: counted as a tie (as the Chatbot Arena does) or "
        "left out.",
    )
    include_named: bool = Field(
        False,
        description="Also count side-by-side votes, cast with the model names showing (biased); "
        "by default they are only reported.",
    )
    identity_filter: bool = Field(
        False,
        description="Leave out votes whose conversation names a model family or one of this "
        "arena's models, as the public arena does.",
    )
    bootstrap_rounds: Annotated[int, Field(ge=10, le=10000)] = Field(
        100, description="Bootstrap rounds behind the 95% confidence intervals (seed fixed)."
    )
    refresh_seconds: Annotated[int, Field(ge=2, le=30)] = Field(
        10, description="How often the service looks for new votes and the tab reloads."
    )


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


class HfCache(Strict):
    volume: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")] | None = Field(
        None, description="Named volume for the Hugging Face cache. Default 'hf-cache'."
    )
    host_path: NonEmptyStr | None = Field(
        None, description="Host directory used as the Hugging Face cache instead of a volume."
    )

    @model_validator(mode="after")
    def _one_of(self) -> HfCache:
        if self.volume is not None and self.host_path is not None:
            raise ValueError("set either volume or host_path, not both")
        return self


# Official images, pinned: Prometheus's LTS line and Grafana OSS (Docker Hub tags, 2025/2026).
DEFAULT_PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0"
DEFAULT_GRAFANA_IMAGE = "grafana/grafana:12.1.1"


class Prometheus(Strict):
    source: Literal["official", "debian"] = Field(
        "official",
        description="'official': pull `image`. 'debian': build images/prometheus (Debian "
        "bookworm's `prometheus` package) on `images.fastchat.base_image`, for hosts without a "
        "registry.",
    )
    image: NonEmptyStr = Field(
        DEFAULT_PROMETHEUS_IMAGE, description="Prometheus image when `source` is 'official'."
    )
    port: Port | None = Field(
        9090, description="Host port of Prometheus's web UI and API; null: not published."
    )
    retention: Annotated[str, Field(pattern=r"^[0-9]+[smhdwy]$")] = Field(
        "15d", description="--storage.tsdb.retention.time: how long samples are kept."
    )


class Grafana(Strict):
    enabled: bool = Field(
        True,
        description="Run Grafana with the Prometheus datasource and the arenastack dashboard "
        "provisioned. Its admin password comes from GRAFANA_ADMIN_PASSWORD (shell or .env).",
    )
    image: NonEmptyStr = Field(DEFAULT_GRAFANA_IMAGE, description="Grafana image (pulled).")
    port: Port | None = Field(3000, description="Host port of Grafana; null: not published.")


class Monitoring(Strict):
    enabled: bool = Field(
        False,
        description="Add Prometheus (scraping every model server's /metrics every 5 s) and "
        "Grafana with a dashboard per GPU and model.",
    )
    bind_address: str | None = Field(
        None,
        description="Host address Prometheus's and Grafana's ports bind to. Default: "
        "`bind_address`.",
    )
    prometheus: Prometheus = Field(Prometheus(), description="The Prometheus server.")
    grafana: Grafana = Field(Grafana(), description="Grafana and its dashboard.")

    @field_validator("bind_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _ip_address(value)


# An image registry host with an optional port and path: `registry.example.com:5000/team`.
REGISTRY_PATTERN = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$"
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class Kubernetes(Strict):
    """Used only by `render.py --target kubernetes`."""

    gpu_sharing: Literal["whole", "hami"] = Field(
        "whole",
        description="'whole': every model requests whole GPUs (nvidia.com/gpu), so two models "
        "on one GPU index are refused. 'hami': models sharing a GPU get HAMi memory slices "
        "(nvidia.com/gpumem, MiB) of fraction x the GPU's memory; needs HAMi in the cluster. "
        "--gpu-sharing on the command line wins.",
    )
    registry: Annotated[str, Field(pattern=REGISTRY_PATTERN)] | None = Field(
        None,
        description="Registry prefix the images built here are pushed to, e.g. "
        "'registry.example.com/arena': the cluster pulls '<registry>/<image tag>'. Default: "
        "the bare local tags, which the nodes must already hold.",
    )
    namespace: Annotated[str, Field(pattern=DNS_LABEL_PATTERN)] | None = Field(
        None, description="Namespace of every resource (kustomization `namespace`)."
    )
    storage_class: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN)] | None = Field(
        None,
        description="storageClassName of the Hugging Face cache volume, which must support "
        "ReadWriteMany (NFS, CephFS, EFS, Filestore...). Default: the cluster's default class.",
    )
    hf_cache_size: Annotated[str, Field(pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$")] = Field(
        "500Gi", description="Size of the Hugging Face cache volume."
    )
    logs_size: Annotated[str, Field(pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$")] = Field(
        "1Gi", description="Size of the web UI's volume for conversations and votes."
    )
    prometheus_size: Annotated[str, Field(pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$")] = Field(
        "10Gi",
        description="Size of Prometheus's volume (monitoring.enabled), which keeps the samples "
        "for monitoring.prometheus.retention across pod restarts.",
    )
    secret: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN)] = Field(
        "arenastack-env",
        description="Secret (created by you, never rendered) that holds HF_TOKEN and every "
        "`env` variable passed by name (null value), one key per variable; optional keys. With "
        "gateway.enabled also LITELLM_MASTER_KEY, with Grafana GRAFANA_ADMIN_PASSWORD: required "
        "keys (neither starts without one).",
    )
    node_selector: dict[
        Annotated[str, Field(pattern=LABEL_KEY_PATTERN)],
        Annotated[str, Field(pattern=LABEL_VALUE_PATTERN)],
    ] = Field(
        {},
        description="nodeSelector of the model pods, e.g. {kubernetes.io/hostname: gpu-node-1} "
        "to keep every model on one node.",
    )
    gpu_uuids: list[Annotated[str, Field(pattern=r"^GPU-[A-Za-z0-9-]+$")]] | None = Field(
        None,
        description="With gpu_sharing: hami, the physical GPU behind each manifest GPU index "
        "(`nvidia-smi -L`), passed to HAMi as the nvidia.com/use-gpuuuid annotation so models "
        "sharing an index share that card. Default: HAMi's scheduler picks.",
    )


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


class Manifest(Strict):
    """An experiment: which models run where, and the stack around them."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        json_schema_extra={"title": "arenastack model manifest"},
    )

    device: Literal["cuda", "cpu"] = Field(
        "cuda", description="'cpu' runs every model on vLLM's CPU backend, with no GPU."
    )
    project: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")] | None = Field(
        None, description="Compose project name. Default: the output folder's name."
    )
    experiment: Annotated[str, Field(pattern=EXPERIMENT_PATTERN)] | None = Field(
        None,
        description="Name of the experiment: the web UI keeps its conversations and votes in "
        "the folder /logs/<experiment> of the arena-logs volume, and its leaderboard counts "
        "those alone. Default: the manifest file's name without its extension.",
    )
    bind_address: str = Field(
        "127.0.0.1",
        description="Host address every published port binds to. '0.0.0.0' exposes the stack "
        "to the network.",
    )
    gpus: GpuInventorySetting = Field(
        "auto",
        description="'auto' reads the GPUs with NVML; or declare them: '2x80@8.0' or a list of "
        "{memory_gib, compute_capability, name}. --gpus on the command line wins.",
    )
    images: Images = Field(
        Images(),
        description="How the vLLM image (`vllm`) and the FastChat image (`fastchat`) are built.",
    )
    hf_cache: HfCache = Field(
        HfCache(),
        description="Where the shared Hugging Face cache lives: a named volume or a host folder.",
    )
    controller: Controller = Field(Controller(), description="FastChat's controller.")
    webui: WebUI = Field(WebUI(), description="FastChat's web UI.")
    gateway: Gateway = Field(
        Gateway(), description="One OpenAI-compatible endpoint over every model (LiteLLM)."
    )
    leaderboard: LeaderboardSettings = Field(
        LeaderboardSettings(), description="How votes become the leaderboard."
    )
    planner: Planner = Field(Planner(), description="How `auto` fractions and GPUs are chosen.")
    monitoring: Monitoring = Field(
        Monitoring(), description="Prometheus and Grafana for the model servers (opt-in)."
    )
    kubernetes: Kubernetes = Field(
        Kubernetes(), description="How `render.py --target kubernetes` renders the stack."
    )
    defaults: ModelSettings = Field(
        ModelSettings(), description="Settings every model takes unless it sets its own."
    )
    models: dict[Annotated[str, Field(pattern=SERVICE_NAME_PATTERN)], ModelEntry] = Field(
        min_length=1,
        json_schema_extra={"propertyNames": {"pattern": SERVICE_NAME_PATTERN}},
        description="The models, keyed by compose service name (lowercase letters, digits, - "
        "and _).",
    )

    @field_validator("bind_address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _ip_address(value)


# --- resolved view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """One enabled model with defaults applied; `gpus`/`gpu_memory_utilization` may be 'auto'
    until the planner fills them in."""

    service: str
    model: str
    local_path: Path | None
    gpus: tuple[int, ...] | Literal["auto"]
    gpu_memory_utilization: float | Literal["auto"]
    dtype: str
    kv_cache_dtype: str
    max_model_len: int | None
    enforce_eager: bool
    trust_remote_code: bool
    served_model_name: str
    display_name: str
    port: int | None
    extra_args: tuple[str, ...]
    env: dict[str, str | None]
    system_prompt: str | None
    shm_size: str
    cpu_kvcache_space: int
    weights_gib: float | None
    params_b: float | None
    # Which block each setting came from, for messages: `models.x.field` or `defaults.field`.
    origins: dict[str, str]
    # Settings that failed validation (their defaults stand in): nothing is derived from them.
    unchecked: frozenset[str] = frozenset()

    @property
    def tensor_parallel_size(self) -> int:
        return 1 if self.gpus == "auto" else len(self.gpus)

    def path_of(self, setting: str) -> str:
        return self.origins.get(setting, field_path("models", self.service, setting))


BUILTIN_DEFAULTS: dict[str, Any] = {
    "gpu": 0,
    "gpu_memory_utilization": "auto",
    "dtype": "auto",
    "kv_cache_dtype": "auto",
    "max_model_len": None,
    "enforce_eager": False,
    "trust_remote_code": False,
    "extra_args": [],
    "env": {},
    "enabled": True,
    "system_prompt": None,
    "cpu_kvcache_space": 1,
    "weights_gib": None,
    "params_b": None,
}


def resolve_models(
    manifest: Manifest, manifest_dir: Path, pruned: tuple[str, ...] = ()
) -> list[Model]:
    """Apply `defaults`, then the built-in defaults; drop disabled models; keep manifest order.
    `pruned` lists the fields that failed validation (see `Loaded`)."""
    defaults = manifest.defaults.model_dump(exclude_unset=True)
    resolved = []
    for service, entry in manifest.models.items():
        own = entry.model_dump(exclude_unset=True)
        settings: dict[str, Any] = dict(BUILTIN_DEFAULTS)
        origins: dict[str, str] = {}
        for key, value in defaults.items():
            settings[key] = value
            origins[key] = field_path("defaults", key)
        for key, value in own.items():
            settings[key] = value
            origins.pop(key, None)
        settings["env"] = {**defaults.get("env", {}), **own.get("env", {})}
        settings["extra_args"] = [*defaults.get("extra_args", []), *own.get("extra_args", [])]
        if not settings["enabled"]:
            continue
        if manifest.device == "cpu":
            if "dtype" not in defaults and "dtype" not in own:
                settings["dtype"] = "bfloat16"  # fp16 is unstable on vLLM's CPU backend
            if "enforce_eager" not in defaults and "enforce_eager" not in own:
                # Compiled mode needs a C++ compiler in the image (torch inductor); ours has none.
                settings["enforce_eager"] = True
        local_path = _local_path(entry.model, manifest_dir)
        gpu = settings["gpu"]
        resolved.append(
            Model(
                service=service,
                model=entry.model,
                local_path=local_path,
                gpus=gpu if gpu == "auto" else ((gpu,) if isinstance(gpu, int) else tuple(gpu)),
                gpu_memory_utilization=settings["gpu_memory_utilization"],
                dtype=settings["dtype"],
                kv_cache_dtype=settings["kv_cache_dtype"],
                max_model_len=settings["max_model_len"],
                enforce_eager=settings["enforce_eager"],
                trust_remote_code=settings["trust_remote_code"],
                served_model_name=entry.served_model_name
                or (service if local_path else entry.model),
                display_name=entry.display_name or service,
                port=entry.port,
                extra_args=tuple(settings["extra_args"]),
                env=settings["env"],
                system_prompt=settings["system_prompt"],
                shm_size=settings.get("shm_size") or ("2g" if manifest.device == "cpu" else "8g"),
                cpu_kvcache_space=settings["cpu_kvcache_space"],
                weights_gib=settings["weights_gib"],
                params_b=settings["params_b"],
                origins=origins,
                unchecked=_unchecked(service, pruned),
            )
        )
    return resolved


def _unchecked(service: str, pruned: tuple[str, ...]) -> frozenset[str]:
    """The model's settings that failed validation. A misspelled key may be any of them (it
    is most often the GPU or the fraction), so an unknown key marks the model's placement and
    fraction unchecked too: nothing is planned on a guess."""
    unchecked = set()
    for block in (field_path("models", service), "defaults"):
        for path in pruned:
            setting = path.removeprefix(block + ".").split(".")[0]
            if not path.startswith(block + "."):
                continue
            if setting in ModelEntry.model_fields:
                unchecked.add(setting)
            else:
                unchecked |= {"gpu", "gpu_memory_utilization"}
    return frozenset(unchecked)


def _local_path(model: str, manifest_dir: Path) -> Path | None:
    if not model.startswith(LOCAL_PATH_PREFIXES):
        return None
    return (manifest_dir / Path(model).expanduser()).resolve()


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A manifest as far as it validates: fields that failed are left out (their defaults apply)
    and listed in `pruned`, so that the checks after validation still run on the rest and every
    problem is reported in one run. `manifest` is None when nothing checkable is left."""

    manifest: Manifest | None
    problems: list[Problem]
    pruned: tuple[str, ...]  # manifest paths of the fields left out

    def derived_from_pruned(self, problem: Problem) -> bool:
        """A later check's complaint about a field that already failed validation (its default
        stood in) says nothing true about the manifest."""
        return any(problem.path == p or problem.path.startswith(p + ".") for p in self.pruned)


def load_manifest(path: Path) -> Loaded:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return Loaded(None, [Problem("", f"cannot read manifest {path}: {error.strerror}")], ())
    try:
        data = serialize.load(text)
    except yaml.YAMLError as error:
        where = ""
        if mark := getattr(error, "problem_mark", None):
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(error, "problem", None) or "cannot be parsed"
        message = f"not valid YAML{where}: {problem} (in {path})"
        return Loaded(None, [Problem("", message)], ())
    stem_problems = []
    if isinstance(data, dict) and "experiment" not in data:
        # A hidden file's leading dots are not part of the name (`.trial.yaml` is `trial`).
        stem = path.stem.lstrip(".")
        if re.match(EXPERIMENT_PATTERN, stem):
            data = {**data, "experiment": stem}
        else:
            message = (
                f"not set, and the manifest's file name {path.stem!r} is no safe folder name "
                "(letters, digits, _ . -): set it"
            )
            stem_problems.append(Problem("experiment", message))
    loaded = validate_leniently(data)
    if stem_problems:
        return Loaded(loaded.manifest, stem_problems + loaded.problems, loaded.pruned)
    return loaded


def experiment_of(manifest: Manifest) -> str:
    """The experiment's name; a manifest parsed without a file is the experiment 'arena'."""
    return manifest.experiment or "arena"


def parse_manifest(data: object) -> Manifest:
    """The manifest, or ManifestError listing every problem."""
    loaded = validate_leniently(data)
    if loaded.problems or loaded.manifest is None:
        raise ManifestError(loaded.problems)
    return loaded.manifest


# Enough for any manifest: each round leaves out at least one field.
_MAX_ROUNDS = 200


def validate_leniently(data: object) -> Loaded:
    if not isinstance(data, dict):
        return Loaded(None, [Problem("", "the manifest must be a mapping with a `models` key")], ())
    data = copy.deepcopy(data)
    problems: list[Problem] = []
    pruned: list[Location] = []
    for _ in range(_MAX_ROUNDS):
        try:
            manifest = Manifest.model_validate(data)
        except ValidationError as error:
            details = error.errors(include_url=False)
        else:
            return Loaded(manifest, problems, tuple(field_path(*p) for p in pruned))
        progressed = False
        for detail in details:
            location = _location(detail["loc"])
            # Not an echo of a field already left out, nor of leaving it out (the last model
            # of `models` gone makes `models` empty).
            echo = any(location[: len(p)] == p or p[: len(location)] == location for p in pruned)
            if not echo:
                problems.append(_problem(detail))
            target = _prune_target(location, detail["type"])
            if target is None:
                return Loaded(None, problems, tuple(field_path(*p) for p in pruned))
            if _delete(data, target):
                pruned.append(target)
                progressed = True
        if not progressed:
            break
    return Loaded(None, problems, tuple(field_path(*p) for p in pruned))


Location = tuple[str | int, ...]


def _location(loc: tuple[str | int, ...]) -> Location:
    return tuple(part for part in loc if part != "[key]")


def _prune_target(location: Location, kind: str) -> Location | None:
    """What to leave out so that the rest validates: the failing field; a whole list for one bad
    item; the entry holding a missing required field; None when nothing checkable would remain."""
    if kind == "missing":
        location = location[:-1]
    while location and isinstance(location[-1], int):
        location = location[:-1]
    if not location or location == ("models",):
        return None
    return location


def _delete(data: dict[str, Any], location: Location) -> bool:
    node: Any = data
    for part in location[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if isinstance(node, dict) and location[-1] in node:
        del node[location[-1]]
        return True
    return False


def _problem(detail: Any) -> Problem:
    location = [str(part) for part in _location(detail["loc"])]
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        message = "unknown key (misspelled? the manifest reference lists the keys)"
    elif detail["loc"][0] == "models" and detail["loc"][2:] == ("[key]",):
        message = "is not a valid service name: use lowercase letters, digits, - and _"
    return Problem(field_path(*location), message)
