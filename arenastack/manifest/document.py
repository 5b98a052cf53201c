"""The whole manifest: the top-level keys and the blocks under them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from arenastack.manifest.fields import (
    EXPERIMENT_PATTERN,
    SERVICE_NAME_PATTERN,
    Strict,
    _ip_address,
)
from arenastack.manifest.gpus import GpuInventorySetting, Planner
from arenastack.manifest.kubernetes import Kubernetes
from arenastack.manifest.model_settings import ModelEntry, ModelSettings
from arenastack.manifest.residency import Residency
from arenastack.manifest.services import (
    Controller,
    Gateway,
    HfCache,
    Images,
    LeaderboardSettings,
    Monitoring,
    WebUI,
)


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
    residency: Residency | None = Field(
        None,
        description="Hold more models than fit awake: at most `awake_per_gpu` per GPU are awake, "
        "the others asleep, woken on demand by the residency service. Off by default.",
    )
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
