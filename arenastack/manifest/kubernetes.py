"""The `kubernetes` block: how `render.py --target kubernetes` renders the stack."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from arenastack.manifest.fields import Strict

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
