"""The services around the models: how the images are built, the Hugging Face cache, FastChat's
controller and web UI, the gateway, the leaderboard and monitoring."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from arenastack.manifest.fields import (
    DEFAULT_SLIM_BASE_IMAGE,
    DEFAULT_VLLM_REF,
    RELEASE_REF,
    NonEmptyStr,
    Port,
    PositiveInt,
    Strict,
    _ip_address,
)


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
