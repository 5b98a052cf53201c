"""What only a cluster refuses or warns about, checked with the Compose target's checks so that
every problem comes at once."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from arenastack.core.problems import Problem, field_path
from arenastack.gateway import checks as gateway_checks
from arenastack.gateway import litellm
from arenastack.manifest import GpuSpec, Manifest, Model
from arenastack.plan import checks
from arenastack.plan.memory import for_version
from arenastack.render import pipeline
from arenastack.render.kubernetes.documents import GATEWAY_KEYS_SECRET, file_name_of
from arenastack.render.kubernetes.hami import CONTEXT_MIB, gpumem_mib
from arenastack.render.pipeline import Prepared

# Kubernetes Services are named by DNS-1035 labels: no `_`, no leading digit.
SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
UNCARRIED = re.compile("[\x7f-\x9f\ufffe\uffff]")


def sharing_of(manifest: Manifest, override: str | None) -> str:
    return override or manifest.kubernetes.gpu_sharing


def prepare(
    manifest_path: Path,
    gpus_spec: str | None,
    sharing_override: str | None,
    host_memory_gib: float | None = None,
) -> tuple[Prepared, str]:
    """The compose pipeline's load, plan and checks, with this target's checks among them."""

    def cluster_checks(
        manifest: Manifest, models: list[Model], gpus: list[GpuSpec]
    ) -> list[Problem]:
        return problems(manifest, models, gpus, sharing_of(manifest, sharing_override))

    prepared = pipeline.prepare(
        manifest_path, gpus_spec, extra_checks=cluster_checks, host_memory_gib=host_memory_gib
    )
    sharing = sharing_of(prepared.manifest, sharing_override)
    if sharing == "hami" and prepared.manifest.device == "cuda":
        prepared = replace(prepared, warnings=_hami_warnings(prepared))
    return prepared, sharing


def _hami_warnings(prepared: Prepared) -> list[Problem]:
    """In HAMi slices each CUDA context lives inside its own slice, so the Compose warning about
    contexts crowding a shared GPU does not apply; what can go short is the slice itself."""
    memory = [gpu.memory_gib for gpu in prepared.gpus]
    mm = for_version(prepared.dialect.version)  # the bound checks.warnings used
    compose_only = set(checks.tight_gpus(prepared.plan.models, memory, mm))
    found = [w for w in prepared.warnings if w not in compose_only]
    for entry in prepared.plan.entries:
        needed, model = entry.needed_bytes, entry.model
        if needed is None or model.gpus == "auto" or model.gpu_memory_utilization == "auto":
            continue
        slice_mib = gpumem_mib(model, prepared.gpus)
        if slice_mib is None:
            continue
        room = (slice_mib - CONTEXT_MIB) * 2**20
        if room < needed:
            found.append(
                Problem(
                    model.path_of("gpu_memory_utilization"),
                    f"its HAMi slice of {slice_mib} MiB holds the CUDA context too (~"
                    f"{CONTEXT_MIB} MiB), leaving {room / 2**30:.2f} GiB where the plan needs "
                    f"{needed / 2**30:.2f} GiB: raise the fraction if vLLM runs short of KV cache",
                )
            )
    return found


def problems(
    manifest: Manifest, models: list[Model], gpus: list[GpuSpec], sharing: str
) -> list[Problem]:
    """What only a cluster refuses; run with the compose checks so all errors come at once."""
    found: list[Problem] = []
    if manifest.residency is not None:
        # Neither way of sharing a GPU lets a sleeping model's memory go to another pod.
        found.append(
            Problem(
                "residency",
                f"cannot be expressed on Kubernetes (gpu_sharing {sharing!r}): with 'whole' each "
                "model has GPUs of its own, so none need sleep; with 'hami' each pod reserves its "
                "whole memory slice (nvidia.com/gpumem) asleep or awake, so the scheduler places "
                "no more models on a GPU than fit awake. Render this manifest for Compose, or "
                "remove the block for the cluster",
            )
        )
    for service in manifest.models:
        if not SERVICE_NAME.match(service):
            found.append(
                Problem(
                    field_path("models", service),
                    "is not a valid Kubernetes Service name (lowercase letters, digits and -, "
                    "starting with a letter, at most 63): rename it for --target kubernetes",
                )
            )
    for model in models:
        if model.local_path is not None:
            found.append(
                Problem(
                    model.path_of("model"),
                    "a local directory cannot be mounted into a cluster's pods: put the model "
                    "on the hub (or a mirror) and name its hub id",
                )
            )
    found += _uncarried_characters(manifest.model_dump(warnings=False), "")
    settings = manifest.kubernetes
    if settings.gpu_uuids is not None:
        if sharing != "hami":
            found.append(
                Problem(
                    "kubernetes.gpu_uuids",
                    "only applies with gpu_sharing: hami (HAMi's nvidia.com/use-gpuuuid)",
                )
            )
        elif len(settings.gpu_uuids) < len(gpus):
            found.append(
                Problem(
                    "kubernetes.gpu_uuids",
                    f"names {len(settings.gpu_uuids)} GPU(s) but the inventory has {len(gpus)}: "
                    "give one UUID per GPU index",
                )
            )
    if manifest.device != "cuda":
        return found
    if sharing == "hami" and manifest.planner.kv_cache == "elastic":
        found.append(
            Problem(
                "planner.kv_cache",
                "'elastic' shares one KV pool among the models of a GPU, and HAMi gives each pod a "
                "fixed slice of it: use 'exact' with gpu_sharing: hami",
            )
        )
    if sharing == "whole":
        found += _shared_gpus(models)
    else:
        for model in models:
            slice_mib = gpumem_mib(model, gpus)
            if slice_mib is not None and slice_mib < 2 * CONTEXT_MIB:
                found.append(
                    Problem(
                        model.path_of("gpu_memory_utilization"),
                        f"a HAMi slice of {slice_mib} MiB is less than twice the CUDA context "
                        f"(~{CONTEXT_MIB} MiB) that vLLM holds inside it: raise the fraction",
                    )
                )
    return found


def _uncarried_characters(value: Any, path: str) -> list[Problem]:
    """kubectl kustomize (kyaml) rejects C1 controls, U+007F and U+FFFE/U+FFFF ("control
    characters are not allowed") and silently drops U+0085 (NEL): refuse what it would lose."""
    if isinstance(value, str):
        found = UNCARRIED.search(value)
        if found is None:
            return []
        return [
            Problem(
                path,
                f"contains U+{ord(found.group()):04X}, which kubectl kustomize cannot carry (it "
                "drops U+0085 and rejects U+007F-U+009F and U+FFFE/U+FFFF): remove it for "
                "--target kubernetes",
            )
        ]
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(field_path(path, key) if path else str(key), v) for key, v in value.items()]
    elif isinstance(value, list | tuple):
        items = [(path, v) for v in value]
    found_all: list[Problem] = []
    for item_path, item in items:
        for problem in _uncarried_characters(item, item_path):
            if problem not in found_all:
                found_all.append(problem)
    return found_all


def _shared_gpus(models: list[Model]) -> list[Problem]:
    first_on: dict[int, str] = {}
    found = []
    for model in models:
        if model.gpus == "auto":  # the planner could not place it, and says so
            continue
        for index in model.gpus:
            if index in first_on:
                found.append(
                    Problem(
                        model.path_of("gpu"),
                        f"{model.service} is on GPU {index}, the GPU of {first_on[index]}: with "
                        "kubernetes.gpu_sharing: whole every model requests whole GPUs "
                        "(nvidia.com/gpu), which two pods cannot share; give it a GPU of its "
                        "own, or share the GPU as HAMi memory slices (kubernetes.gpu_sharing: "
                        "hami, or --gpu-sharing hami)",
                    )
                )
                break
        for index in model.gpus:
            first_on.setdefault(index, model.service)
    return found


def warnings(prepared: Prepared) -> list[Problem]:
    manifest = prepared.manifest
    found = []
    if manifest.kubernetes.registry is None:
        found.append(
            Problem(
                "kubernetes.registry",
                "not set: the pods name the bare local image tags, which every node must already "
                "hold (set a registry and push the images there, see docs/kubernetes.md)",
            )
        )
    if manifest.hf_cache.host_path is not None:
        found.append(
            Problem(
                "hf_cache.host_path",
                "is ignored on Kubernetes: the cache is a ReadWriteMany volume claim",
            )
        )
    keys_file = manifest.gateway.keys_file
    if manifest.gateway.enabled and keys_file is not None:
        path = gateway_checks.keys_path(keys_file, prepared.manifest_path.resolve().parent)
        keys = file_name_of(litellm.KEYS_FILE)
        found.append(
            Problem(
                "gateway.keys_file",
                f"is not read from this machine on Kubernetes: the gateway reads the Secret "
                f"{GATEWAY_KEYS_SECRET} (key {keys}), which you create from it, and again after "
                f"each change: kubectl create secret generic {GATEWAY_KEYS_SECRET} "
                f"--from-file={keys}={path} --dry-run=client -o yaml | kubectl apply -f -",
            )
        )
    return found
