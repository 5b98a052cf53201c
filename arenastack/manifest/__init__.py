"""The model manifest: a strict pydantic model of the YAML file a user writes.

Per-model field names are vLLM's command-line flags in snake_case (`gpu_memory_utilization` is
`--gpu-memory-utilization`), so a manifest reads like the commands it becomes. Unknown keys are
errors: a typo must not silently fall back to a default.

`load_manifest` returns the validated `Manifest`; `resolve_models` applies the `defaults` block
and the built-in defaults and returns one `Model` per enabled entry, which every later step uses.

The package owns the manifest's schema (`document` and the blocks it is made of: `fields`,
`model_settings`, `gpus`, `services`, `kubernetes`), reading and validating it (`loading`,
`lenient`), the resolved view of its models (`resolved`) and its JSON Schema and reference
(`reference`). Every other package reads manifests through the names exported here.

May import: arenastack.core
"""

from __future__ import annotations

from arenastack.manifest.document import Manifest
from arenastack.manifest.fields import DEFAULT_CUDA_BASE_IMAGE, DEFAULT_VLLM_REF
from arenastack.manifest.gpus import GpuSpec, Planner, parse_gpu_shorthand
from arenastack.manifest.kubernetes import Kubernetes
from arenastack.manifest.lenient import Loaded
from arenastack.manifest.loading import experiment_of, load_manifest, parse_manifest
from arenastack.manifest.model_settings import ModelEntry, ModelSettings
from arenastack.manifest.resolved import Model, resolve_models
from arenastack.manifest.services import (
    Controller,
    FastChatImage,
    Gateway,
    Grafana,
    HfCache,
    Images,
    LeaderboardSettings,
    Monitoring,
    Prometheus,
    VllmImage,
    WebUI,
)

__all__ = [
    "DEFAULT_CUDA_BASE_IMAGE",
    "DEFAULT_VLLM_REF",
    "Controller",
    "FastChatImage",
    "Gateway",
    "GpuSpec",
    "Grafana",
    "HfCache",
    "Images",
    "Kubernetes",
    "LeaderboardSettings",
    "Loaded",
    "Manifest",
    "Model",
    "ModelEntry",
    "ModelSettings",
    "Monitoring",
    "Planner",
    "Prometheus",
    "VllmImage",
    "WebUI",
    "experiment_of",
    "load_manifest",
    "parse_gpu_shorthand",
    "parse_manifest",
    "resolve_models",
]
