"""The resources of the stack: the model servers, the fetch Job, FastChat, the volumes, and the
kustomization that lists them."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from arenastack.core.services import CONTROLLER_PORT, VLLM_PORT, WEBUI_PORT
from arenastack.manifest import Model
from arenastack.render import (
    arena_json,
    endpoints,
    fetch_models,
    k8s_pod,
    stack,
    templates,
)
from arenastack.render.kubernetes.documents import (
    CONFIG_DIGEST,
    PART_OF,
    SCRIPTS_DIR,
    Cluster,
    cache_claim,
    cache_mount,
    cache_volume,
    configmap_resource,
    digest_of,
    env_list,
    file_name_of,
    fragment,
    labels_of,
    quantity,
    scripts_mount,
    scripts_volume,
    selector_of,
    service_resource,
    unexpanded,
)
from arenastack.render.kubernetes.gateway_monitoring import (
    gateway_resources,
    grafana_resources,
    prometheus_resources,
)
from arenastack.render.kubernetes.hami import gpumem_mib, slice_fraction
from arenastack.render.kubernetes.images import fastchat_image, vllm_image
from arenastack.render.kubernetes.output import MARKER
from arenastack.render.pipeline import Prepared

LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
# 10 s × 180: half an hour for a large model to load from a network volume.
STARTUP_FAILURES = 180


def build(prepared: Prepared, sharing: str, source: str) -> dict[str, str]:
    """File name → text of the kustomization folder."""
    cluster = Cluster(
        prepared,
        sharing,
        vllm_image(prepared),
        fastchat_image(prepared),
    )
    resources: dict[str, dict[str, Any]] = {}
    resources |= _volumes(cluster)
    resources["scripts-configmap.yaml"] = configmap_resource(
        "arenastack-scripts",
        {"fetch_models.py": fetch_models.source(), "k8s_pod.py": k8s_pod.source()},
    )
    endpoints_file = {file_name_of(stack.ENDPOINTS_FILE): endpoints.render(cluster.models)}
    arena_file = {
        file_name_of(arena_json.ARENA_FILE): arena_json.render(cluster.manifest, cluster.models)
    }
    resources["api-endpoints-configmap.yaml"] = configmap_resource("api-endpoints", endpoints_file)
    resources["arena-configmap.yaml"] = configmap_resource("arena", arena_file)
    resources["fetch-models-job.yaml"] = _fetch_job(cluster)
    for model, after in zip(
        cluster.models,
        stack.start_chains(cluster.models, cluster.prepared.plan.together),
        strict=True,
    ):
        resources[f"{model.service}-deployment.yaml"] = _model(cluster, model, after)
        resources[f"{model.service}-service.yaml"] = service_resource(
            model.service, "model", VLLM_PORT
        )
    resources["controller-deployment.yaml"] = _controller(cluster)
    resources["controller-service.yaml"] = service_resource(
        "controller", "controller", CONTROLLER_PORT
    )
    # The UI reads both files once, at start: their digest rolls its pod when either changes.
    resources["webui-deployment.yaml"] = _webui(cluster, digest_of(endpoints_file | arena_file))
    resources["webui-service.yaml"] = service_resource("webui", "webui", WEBUI_PORT)
    if prepared.manifest.gateway.enabled:
        resources |= gateway_resources(cluster)
    if prepared.manifest.monitoring.enabled:
        resources |= prometheus_resources(cluster)
        if prepared.manifest.monitoring.grafana.enabled:
            resources |= grafana_resources(cluster)
    kustomization = fragment(
        "kustomization",
        {"namespace": prepared.manifest.kubernetes.namespace, "resources": list(resources)},
    )
    header = (
        f"{MARKER} from {source!r}; edit the manifest and render again.\n"
        f"vLLM flag dialect: {prepared.dialect.label}; GPU sharing: {sharing}."
    )
    files = {"kustomization.yaml": templates.dump(kustomization, header)}
    files |= {name: templates.dump(document, header) for name, document in resources.items()}
    return files


def _model(cluster: Cluster, model: Model, after: list[str]) -> dict[str, Any]:
    manifest = cluster.manifest
    served = model
    resources: dict[str, Any] = {}
    annotations: dict[str, str] = {}
    if cluster.cuda:
        assert model.gpus != "auto"
        limits: dict[str, int] = {"nvidia.com/gpu": model.tensor_parallel_size}
        if cluster.sharing == "hami":
            slice_mib = gpumem_mib(model, cluster.prepared.gpus, _footprint(cluster, model))
            assert slice_mib is not None, "the checks reject GPU indices outside the inventory"
            limits["nvidia.com/gpumem"] = slice_mib
            served = replace(model, gpu_memory_utilization=slice_fraction(slice_mib))
            uuids = manifest.kubernetes.gpu_uuids
            if uuids:
                annotations["nvidia.com/use-gpuuuid"] = ",".join(uuids[i] for i in model.gpus)
        resources = {"limits": limits}
    hub = model.local_path is None
    wait = ["--fetched", model.model] if hub else []
    for previous in after:
        wait += ["--healthy", f"http://{previous}:{VLLM_PORT}/health"]
    hf_home = stack.HF_HOME
    return fragment(
        "model-deployment",
        {
            "name": model.service,
            "labels": labels_of(model.service, "model"),
            "selector": selector_of(model.service),
            "annotations": annotations or None,
            "node_selector": _node_selector(cluster, model) or None,
            "image": cluster.vllm_image,
            "wait_command": unexpanded(["python3", f"{SCRIPTS_DIR}/k8s_pod.py", "wait", *wait]),
            "wait_env": [{"name": "HF_HOME", "value": hf_home}],
            "wait_mounts": [cache_mount(cluster), scripts_mount()],
            "command": unexpanded(
                stack.vllm_command(served, cluster.prepared.dialect, cluster.cuda)
            ),
            "env": env_list(
                cluster,
                stack.model_environment(
                    model, cluster.prepared.dialect, cluster.cuda, cluster.elastic
                ),
            ),
            "port": VLLM_PORT,
            "resources": resources,
            "mounts": [
                cache_mount(cluster),
                *_compile_cache_mount(cluster),
                {"name": "shm", "mountPath": "/dev/shm"},
            ],
            "startup_failures": STARTUP_FAILURES,
            "volumes": [
                cache_volume(cluster),
                scripts_volume(),
                {
                    "name": "shm",
                    "emptyDir": {"medium": "Memory", "sizeLimit": quantity(model.shm_size)},
                },
            ],
        },
    )


def _footprint(cluster: Cluster, model: Model) -> int | None:
    """The plan's footprint of a model sized in bytes, None for one sized by its fraction."""
    for entry in cluster.prepared.plan.entries:
        if entry.model.service == model.service and entry.sizing == "bytes":
            return entry.footprint_bytes
    return None


def _compile_cache_mount(cluster: Cluster) -> list[dict[str, Any]]:
    """vLLM's torch.compile cache, kept on the shared cache claim beside the models (as Compose
    keeps it in a volume), where servers compile: CUDA with the V1 engine."""
    if not (cluster.cuda and cluster.prepared.dialect.compiles):
        return []
    return [{"name": "hf-cache", "mountPath": stack.VLLM_CACHE, "subPath": "vllm-compile-cache"}]


def _node_selector(cluster: Cluster, model: Model) -> dict[str, str]:
    """The manifest's node selector, and the GPU product where the inventory names it (the
    label NVIDIA's GPU feature discovery sets, spaces as dashes)."""
    selector = dict(cluster.manifest.kubernetes.node_selector)
    if cluster.cuda and model.gpus != "auto":
        gpus = cluster.prepared.gpus
        names = {gpus[i].name for i in model.gpus if i < len(gpus)}
        if len(names) == 1 and (name := names.pop()):
            product = name.strip().replace(" ", "-")
            if LABEL_VALUE.match(product):
                selector.setdefault("nvidia.com/gpu.product", product)
    return selector


def _fetch_job(cluster: Cluster) -> dict[str, Any]:
    repos = list(dict.fromkeys(m.model for m in cluster.models if m.local_path is None))
    return fragment(
        "fetch-models-job",
        {
            "labels": labels_of("fetch-models", "fetch-models"),
            "image": cluster.vllm_image,
            "command": unexpanded(["python3", f"{SCRIPTS_DIR}/k8s_pod.py", "fetch", *repos]),
            "env": env_list(cluster, stack.hub_environment(cluster.cuda)),
            "mounts": [cache_mount(cluster), scripts_mount()],
            "volumes": [cache_volume(cluster), scripts_volume()],
        },
    )


def _controller(cluster: Cluster) -> dict[str, Any]:
    manifest = cluster.manifest
    command = stack.controller_command(manifest)
    return fragment(
        "fastchat-deployment",
        {
            "name": "controller",
            "labels": labels_of("controller", "controller"),
            "selector": selector_of("controller"),
            "init_containers": None,
            "image": cluster.fastchat_image,
            "command": unexpanded(command),
            "env": None,
            "working_dir": None,
            "port": CONTROLLER_PORT,
            "probe_path": "/test_connection",
            "mounts": None,
            "volumes": None,
            "annotations": None,
            "leaderboard": None,
        },
    )


def _webui(cluster: Cluster, files_digest: str) -> dict[str, Any]:
    # As on Compose, the UI waits for the controller alone: its models come from a file.
    wait = ["--healthy", f"http://controller:{CONTROLLER_PORT}/test_connection"]
    init = {
        "name": "wait",
        "image": cluster.fastchat_image,
        "imagePullPolicy": "IfNotPresent",
        "command": unexpanded(["python3", f"{SCRIPTS_DIR}/k8s_pod.py", "wait", *wait]),
        "volumeMounts": [scripts_mount()],
    }
    logs = {"name": "arena-logs", "mountPath": stack.LOGDIR}
    arena_mount = {
        "name": "arena",
        "mountPath": arena_json.ARENA_FILE,
        "subPath": file_name_of(arena_json.ARENA_FILE),
        "readOnly": True,
    }
    leaderboard = None
    if arena_json.leaderboard_enabled(cluster.manifest):
        leaderboard = {
            "command": unexpanded(arena_json.leaderboard_command()),
            "mounts": [logs, arena_mount],
        }
    return fragment(
        "fastchat-deployment",
        {
            "name": "webui",
            "labels": labels_of("webui", "webui"),
            "selector": selector_of("webui"),
            "annotations": {CONFIG_DIGEST: files_digest},
            "init_containers": [init],
            "image": cluster.fastchat_image,
            "command": unexpanded(stack.webui_command(cluster.manifest)),
            "env": env_list(cluster, stack.webui_environment(cluster.manifest)),
            "working_dir": stack.LOGDIR,
            "port": WEBUI_PORT,
            "probe_path": "/robots.txt",
            "mounts": [
                logs,
                {
                    "name": "api-endpoints",
                    "mountPath": stack.ENDPOINTS_FILE,
                    "subPath": file_name_of(stack.ENDPOINTS_FILE),
                    "readOnly": True,
                },
                arena_mount,
                scripts_mount(),
            ],
            "volumes": [
                {"name": "arena-logs", "persistentVolumeClaim": {"claimName": "arena-logs"}},
                {"name": "api-endpoints", "configMap": {"name": "api-endpoints"}},
                {"name": "arena", "configMap": {"name": "arena"}},
                scripts_volume(),
            ],
            "leaderboard": leaderboard,
        },
    )


def _volumes(cluster: Cluster) -> dict[str, dict[str, Any]]:
    settings = cluster.manifest.kubernetes
    cache = cache_claim(cluster)
    return {
        f"{cache}-pvc.yaml": fragment(
            "pvc",
            {
                "name": cache,
                "labels": {**PART_OF},
                "access_mode": "ReadWriteMany",
                "storage_class": settings.storage_class,
                "size": settings.hf_cache_size,
            },
        ),
        "arena-logs-pvc.yaml": fragment(
            "pvc",
            {
                "name": "arena-logs",
                "labels": {**PART_OF},
                "access_mode": "ReadWriteOnce",
                "storage_class": None,
                "size": settings.logs_size,
            },
        ),
    }
