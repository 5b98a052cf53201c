"""What the manifest must hold for the gateway to work, checked with the rest before anything is
written; and the warning when no master key is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from arenastack.core import serialize
from arenastack.core.problems import Problem, field_path
from arenastack.gateway.litellm import MASTER_KEY_ENV
from arenastack.manifest import Manifest, Model


def problems(manifest: Manifest, models: list[Model], manifest_dir: Path) -> list[Problem]:
    if not manifest.gateway.enabled:
        return []
    return [
        *_port(manifest, models),
        *_names_route_one_way(models),
        *_keys_file(manifest, manifest_dir),
    ]


def _port(manifest: Manifest, models: list[Model]) -> Iterator[Problem]:
    port = manifest.gateway.port
    taken = {manifest.webui.port: "webui.port"}
    if manifest.controller.port is not None:
        taken.setdefault(manifest.controller.port, "controller.port")
    for model in models:
        if model.port is not None:
            taken.setdefault(model.port, model.path_of("port"))
    if port in taken:
        yield Problem("gateway.port", f"host port {port} is also {taken[port]}")


def _names_route_one_way(models: list[Model]) -> Iterator[Problem]:
    """Every name the gateway routes by must lead to one model: a display name may not be
    another model's served name."""
    served = {model.served_model_name: model.service for model in models}
    for model in models:
        other = served.get(model.display_name)
        if other is not None and other != model.service:
            yield Problem(
                model.path_of("display_name"),
                f"{model.display_name!r} is the served_model_name of {other}; the gateway routes "
                "by both names, so each must lead to one model",
            )


def _keys_file(manifest: Manifest, manifest_dir: Path) -> Iterator[Problem]:
    written = manifest.gateway.keys_file
    if written is None:
        return
    path = keys_path(written, manifest_dir)
    where = "gateway.keys_file"
    try:
        data = serialize.load(path.read_text(encoding="utf-8"))
    except OSError as error:
        yield Problem(where, f"cannot read {path}: {error.strerror}")
        return
    except yaml.YAMLError:
        yield Problem(where, f"is not valid YAML: {path}")
        return
    # Messages name users, never keys.
    if not isinstance(data, dict) or not data:
        yield Problem(where, f"must be a non-empty mapping of user name to key: {path}")
        return
    seen: dict[str, str] = {}
    for user, key in data.items():
        if not isinstance(user, str) or not isinstance(key, str) or not key.strip():
            yield Problem(
                where, f"the key of user {str(user)!r} must be a non-empty string: {path}"
            )
        elif key in seen:
            yield Problem(where, f"users {seen[key]!r} and {user!r} have the same key: {path}")
        else:
            seen[key] = user


def keys_path(written: str, manifest_dir: Path) -> Path:
    return (manifest_dir / Path(written).expanduser()).resolve()


def warnings(manifest: Manifest, env_file: Path) -> list[Problem]:
    """A gateway without a master key would not start; say so at render time, and how to fix it.
    Compose fills the variable from the shell, else from the .env beside the compose file."""
    if not manifest.gateway.enabled or master_key_is_set(env_file):
        return []
    return [
        Problem(
            field_path("gateway", "enabled"),
            f"{MASTER_KEY_ENV} is set neither in the environment nor in {env_file}, and the "
            "gateway refuses to start without it. Set one: "
            f'echo "{MASTER_KEY_ENV}=sk-$(openssl rand -hex 32)" >> {env_file}',
        )
    ]


def master_key_is_set(env_file: Path) -> bool:
    return master_key(env_file) is not None


def master_key(env_file: Path) -> str | None:
    """The gateway's master key, from the shell or the `.env` Compose reads (`env_file`)."""
    if value := os.environ.get(MASTER_KEY_ENV, "").strip():
        return value
    try:
        lines = env_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        name, equals, value = line.strip().removeprefix("export ").partition("=")
        if equals and name.strip() == MASTER_KEY_ENV and value.strip().strip("'\"").strip():
            return value.strip().strip("'\"").strip()
    return None
    for line in lines:
        name, equals, value = line.strip().removeprefix("export ").partition("=")
        if equals and name.strip() == MASTER_KEY_ENV and value.strip().strip("'\"").strip():
            return True
    return False
