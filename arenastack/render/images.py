"""Which image each service runs, and how it is built here: the build context, its arguments and
the tag, which both targets use (Kubernetes pulls the same tags from its registry)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from arenastack.core.paths import IMAGES, REPO
from arenastack.gateway import litellm
from arenastack.manifest import DEFAULT_CUDA_BASE_IMAGE
from arenastack.render.stack import Stack

# kvcached's release in the vLLM image with `planner.kv_cache: elastic` (PyPI sdist, Apache-2.0):
# built and run against vLLM 0.24.0 on the lent H200 (docs/planner.md).
KVCACHED_VERSION = "0.1.6"
# Debian bookworm's `prometheus` package on the base image (images/prometheus).
PROMETHEUS_DEBIAN_TAG = "arenastack/prometheus:bookworm"


@dataclass(frozen=True)
class Image:
    """The image a service runs: built here from `context` (relative to the compose file) with
    `args`, or pulled where there is no context."""

    tag: str
    pull_policy: str
    context: str | None = None
    args: dict[str, str] | None = None
    # The Dockerfile, relative to the context, where it is not the context's own.
    dockerfile: str | None = None


def vllm_image(stack: Stack) -> Image:
    settings = stack.manifest.images.vllm
    if stack.manifest.device == "cpu":
        context = IMAGES / "vllm-cpu"
        args = {"BASE_IMAGE": settings.base_image or stack.manifest.images.fastchat.base_image}
        tag = settings.tag or f"arenastack/vllm-cpu:{stack.dialect.label.removeprefix('v')}"
    elif settings.source == "wheel":
        # The released wheel (images/vllm-wheel): no arch list, nothing compiled.
        context = IMAGES / "vllm-wheel"
        version = settings.vllm_ref.removeprefix("v")
        args = {
            "BASE_IMAGE": settings.base_image or DEFAULT_CUDA_BASE_IMAGE,
            "VLLM_VERSION": version,
        }
        tag = settings.tag or f"arenastack/vllm-wheel:v{version}"
    else:
        context = IMAGES / "vllm"
        args = {
            "BASE_IMAGE": settings.base_image or DEFAULT_CUDA_BASE_IMAGE,
            "VLLM_REF": settings.vllm_ref,
            "TORCH_CUDA_ARCH_LIST": stack.cuda_arch_list,
        }
        if settings.max_jobs is not None:
            args["MAX_JOBS"] = str(settings.max_jobs)
        if settings.nvcc_threads is not None:
            args["NVCC_THREADS"] = str(settings.nvcc_threads)
        arches = "-".join("sm" + arch.replace(".", "") for arch in stack.cuda_arch_list.split())
        ref = re.sub(r"[^A-Za-z0-9_.-]", "-", settings.vllm_ref)
        tag = settings.tag or f"arenastack/vllm:{ref}-{arches}"[:128]
    if stack.elastic:
        # The same image with kvcached built in (its Dockerfile's last step).
        args["KVCACHED_VERSION"] = KVCACHED_VERSION
        tag = settings.tag or f"{tag}-kvcached-{KVCACHED_VERSION}"
    return built_image(stack, tag, context, args)


def fastchat_image(stack: Stack) -> Image:
    """Built from the repository's root (its .dockerignore lets through what the Dockerfile
    copies), so that the leaderboard service runs the repository's own arena package."""
    settings = stack.manifest.images.fastchat
    dockerfile = (IMAGES / "fastchat" / "Dockerfile").relative_to(REPO).as_posix()
    args = {"BASE_IMAGE": settings.base_image}
    return built_image(stack, settings.tag, REPO, args, dockerfile)


def built_image(
    stack: Stack, tag: str, context: Path, args: dict[str, str], dockerfile: str | None = None
) -> Image:
    """Images are built here, never pulled: there may be no registry, and a public image of the
    same name must not win. `never` builds a missing image once and leaves an existing one alone
    (`docker compose build` rebuilds)."""
    context_path = stack.relative(context)
    return Image(tag, pull_policy="never", context=context_path, args=args, dockerfile=dockerfile)


def gateway_image(stack: Stack) -> Image:
    settings = stack.manifest.gateway
    tag = litellm.image_tag(stack.manifest)
    if settings.build:
        return built_image(stack, tag, IMAGES / "litellm", {"BASE_IMAGE": settings.base_image})
    # LiteLLM's own image, pinned by version: pulled once if missing.
    return Image(tag, pull_policy="missing")


def prometheus_image(stack: Stack) -> Image:
    manifest = stack.manifest
    server = manifest.monitoring.prometheus
    if server.source == "debian":
        base = {"BASE_IMAGE": manifest.images.fastchat.base_image}
        return built_image(stack, PROMETHEUS_DEBIAN_TAG, IMAGES / "prometheus", base)
    return Image(server.image, pull_policy="missing")
