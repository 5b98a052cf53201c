"""The images the cluster pulls: the Compose target's tags, behind `kubernetes.registry` where
they are built here (and must be pushed there); images pulled on Compose are pulled as named."""

from __future__ import annotations

from arenastack.core.paths import REPO
from arenastack.render import images, pipeline
from arenastack.render.images import Image
from arenastack.render.pipeline import Prepared
from arenastack.render.stack import Stack


def compose_stack(prepared: Prepared) -> Stack:
    """The Compose target's view of the plan, whose image tags and commands this target uses
    (paths in it are never written here)."""
    return pipeline.compose_stack(prepared, output_dir=REPO, manifest_dir=REPO)


def pulled(prepared: Prepared, image: Image) -> str:
    """An image built here is pulled from the registry it was pushed to; another as named."""
    registry = prepared.manifest.kubernetes.registry
    built_here = image.context is not None
    return f"{registry}/{image.tag}" if registry and built_here else image.tag


def vllm_image(prepared: Prepared) -> str:
    return pulled(prepared, images.vllm_image(compose_stack(prepared)))


def fastchat_image(prepared: Prepared) -> str:
    return pulled(prepared, images.fastchat_image(compose_stack(prepared)))


def gateway_image(prepared: Prepared) -> str:
    """LiteLLM built here (images/litellm) is pushed like the stack's other images; LiteLLM's
    official image, pinned by version, is pulled from its own registry."""
    return pulled(prepared, images.gateway_image(compose_stack(prepared)))


def prometheus_image(prepared: Prepared) -> str:
    """Debian's Prometheus is built here (images/prometheus) and pushed; the official is pulled."""
    return pulled(prepared, images.prometheus_image(compose_stack(prepared)))


def images_pulled(prepared: Prepared) -> list[str]:
    manifest = prepared.manifest
    found = [vllm_image(prepared), fastchat_image(prepared)]
    if manifest.gateway.enabled:
        found.append(gateway_image(prepared))
    if manifest.monitoring.enabled:
        found.append(prometheus_image(prepared))
        if manifest.monitoring.grafana.enabled:
            found.append(manifest.monitoring.grafana.image)
    return found
