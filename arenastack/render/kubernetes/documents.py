"""The pieces every resource is made of: labels, Services, ConfigMaps, volumes, environments,
and the templates under templates/k8s, parsed back with their null keys left out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any

import jinja2

from arenastack.core.paths import TEMPLATES
from arenastack.manifest import Manifest, Model
from arenastack.render import stack, templates
from arenastack.render.pipeline import Prepared

SCRIPTS_DIR = "/etc/arenastack/pod"
PART_OF = {"app.kubernetes.io/part-of": "arenastack"}


# The Secret, created by the user from gateway.keys_file, that holds the per-user keys.
GATEWAY_KEYS_SECRET = "gateway-keys"
# Pod template annotation: a digest of the files a pod reads once at start.
CONFIG_DIGEST = "arenastack/config-digest"


@dataclass(frozen=True)
class Cluster:
    """What every resource is built from, once the plan is settled."""

    prepared: Prepared
    sharing: str
    vllm_image: str
    fastchat_image: str

    @property
    def manifest(self) -> Manifest:
        return self.prepared.manifest

    @property
    def models(self) -> list[Model]:
        return self.prepared.plan.models

    @property
    def cuda(self) -> bool:
        return self.manifest.device == "cuda"

    @property
    def elastic(self) -> bool:
        return self.cuda and self.manifest.planner.kv_cache == "elastic"


def labels_of(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, **PART_OF}


def selector_of(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, **PART_OF}


def file_name_of(path: str) -> str:
    return PurePosixPath(path).name


def folder_of(path: str) -> str:
    return str(PurePosixPath(path).parent)


def digest_of(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def service_resource(name: str, component: str, port: int) -> dict[str, Any]:
    return fragment(
        "service",
        {
            "name": name,
            "labels": labels_of(name, component),
            "selector": selector_of(name),
            "port": port,
        },
    )


def configmap_resource(name: str, data: dict[str, str]) -> dict[str, Any]:
    return fragment("configmap", {"name": name, "labels": {**PART_OF}, "data": data})


def cache_claim(cluster: Cluster) -> str:
    return cluster.manifest.hf_cache.volume or "hf-cache"


def cache_volume(cluster: Cluster) -> dict[str, Any]:
    return {"name": "hf-cache", "persistentVolumeClaim": {"claimName": cache_claim(cluster)}}


def cache_mount(cluster: Cluster) -> dict[str, Any]:
    return {"name": "hf-cache", "mountPath": stack.HF_HOME}


def scripts_volume() -> dict[str, Any]:
    return {"name": "scripts", "configMap": {"name": "arenastack-scripts"}}


def scripts_mount() -> dict[str, Any]:
    return {"name": "scripts", "mountPath": SCRIPTS_DIR, "readOnly": True}


def env_list(
    cluster: Cluster, environment: dict[str, str | None], required: Collection[str] = ()
) -> list[dict[str, Any]]:
    """A null value is passed by name: from the user's Secret, one key per variable, optional
    unless `required` names it (the pod then does not start without it)."""
    secret = cluster.manifest.kubernetes.secret
    variables: list[dict[str, Any]] = []
    for name, value in environment.items():
        if value is None:
            reference = {"name": secret, "key": name, "optional": name not in required}
            variables.append({"name": name, "valueFrom": {"secretKeyRef": reference}})
        else:
            variables.append({"name": name, "value": unexpanded(value)})
    return variables


def unexpanded(value: Any) -> Any:
    """Kubernetes expands `$(VAR)` in command, args and env values, and reads `$$` as `$`:
    doubling every `$` keeps a manifest string verbatim."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [unexpanded(item) for item in value]
    return value


def quantity(size: str) -> str:
    """Compose's `8g` as a Kubernetes quantity (`8Gi`)."""
    units = {"b": "", "k": "Ki", "m": "Mi", "g": "Gi"}
    if size[-1] in units:
        return size[:-1] + units[size[-1]]
    return size


@cache
def _environment() -> jinja2.Environment:
    return templates.template_environment(TEMPLATES / "k8s", templates.yaml_json)


def fragment(name: str, values: dict[str, Any]) -> dict[str, Any]:
    pruned: dict[str, Any] = _without_nulls(templates.fragment(_environment(), name, values))
    return pruned


def _without_nulls(value: Any) -> Any:
    """A null means "not set" for this stack: the key is left out, at any depth."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
