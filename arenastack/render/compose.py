"""Build the compose document: values prepared here, laid out by the fragments in templates/.

The templates hold the structure (keys, nesting, which keys are optional; the pieces services
share are macros in templates/_macros.j2); this module passes them scalars, names, commands and
environments. Every value reaches a template through `tojson`, which also doubles `$` so that
Compose does not interpolate manifest strings. The fragments are parsed back into data,
assembled, validated against the Compose specification's JSON Schema, and dumped once."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from functools import cache
from typing import Any

import jinja2

from arenastack.core.paths import TEMPLATES
from arenastack.core.problems import RendererBug
from arenastack.core.services import (
    CONTROLLER_PORT,
    GATEWAY_PORT,
    RESIDENCY_PORT,
    VLLM_PORT,
    WEBUI_PORT,
)
from arenastack.gateway import litellm
from arenastack.manifest import Manifest, Model
from arenastack.monitoring import config, grafana, prometheus
from arenastack.plan.vllm_metrics import metric_names
from arenastack.render import arena_json, endpoints, fetch_models, images, residency, templates
from arenastack.render.stack import (
    COMPILE_CACHE_VOLUME,
    ENDPOINTS_FILE,
    FETCH_MODELS_SCRIPT,
    HF_HOME,
    LOGDIR,
    VLLM_CACHE,
    Stack,
    controller_command,
    fetch_models_command,
    hub_environment,
    model_environment,
    model_folder,
    start_order,
    vllm_command,
    webui_command,
    webui_environment,
)


def build_document(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    vllm = images.vllm_image(stack)
    fastchat = images.fastchat_image(stack)
    services = {"fetch-models": _fragment("fetch-models", _fetch_models(stack), image=vllm)}
    resident = manifest.residency is not None
    awake_per_gpu = manifest.residency.awake_per_gpu if manifest.residency else None
    afters = start_order(stack.models, stack.together, awake_per_gpu)
    awake_at_last = {m.service for m in stack.models}
    if awake_per_gpu is not None:
        awake_at_last = residency.last_wave(stack.models, awake_per_gpu)
    for model, after in zip(stack.models, afters, strict=True):
        values = _model(stack, model, after, model.service in awake_at_last)
        services[model.service] = _fragment("model", values, image=vllm)
    services["controller"] = _fragment("controller", _controller(manifest), image=fastchat)
    services["webui"] = _fragment("webui", _webui(stack), image=fastchat)
    if resident:
        services["residency"] = _fragment("residency", _residency(stack), image=fastchat)
    gateway_on = manifest.gateway.enabled
    prometheus_on = manifest.monitoring.enabled
    grafana_on = prometheus_on and manifest.monitoring.grafana.enabled
    if gateway_on:
        services["gateway"] = _fragment("gateway", _gateway(stack))
    if arena_json.leaderboard_enabled(manifest):
        services["leaderboard"] = _fragment("leaderboard", _leaderboard(stack), image=fastchat)
    if prometheus_on:
        services["prometheus"] = _fragment("prometheus", _prometheus(stack))
    if grafana_on:
        services["grafana"] = _fragment("grafana", _grafana(stack))
    monitoring_files = _monitoring_files(stack) if prometheus_on else {}
    document = _fragment(
        "stack",
        {
            "project": manifest.project,
            **_hf_cache(stack),
            **_compile_cache(stack),
            "api_endpoints": endpoints.render(stack.models, resident),
            "residency": residency.config_text(manifest, stack.models) if resident else None,
            "fetch_models": fetch_models.source(),
            "arena": arena_json.render(manifest, stack.models),
            # The files of the opt-in services; None leaves them (and their volumes) out.
            "gateway": _gateway_configs(stack) if gateway_on else None,
            "prometheus": monitoring_files.get("prometheus") if prometheus_on else None,
            "grafana": monitoring_files.get("grafana") if grafana_on else None,
        },
    )
    for service in services.values():
        _label_config_digest(service, document.get("configs", {}))
    name = {"name": document.pop("name")} if "name" in document else {}
    return {**name, "services": services, **document}


CONFIG_DIGEST_LABEL = "arenastack.config-digest"


def _label_config_digest(service: dict[str, Any], configs: dict[str, Any]) -> None:
    """Compose recreates a container when its service changed, but not when only the content of
    an inline config it mounts did (its service hash leaves content out): a digest of that content
    in a label makes a new arena_json.json, gateway or Prometheus config reach the running stack."""
    contents = [configs[mount["source"]]["content"] for mount in service.get("configs", [])]
    if contents:
        digest = hashlib.sha256(json.dumps(contents).encode()).hexdigest()[:16]
        service["labels"] = {CONFIG_DIGEST_LABEL: digest}


def _model(stack: Stack, model: Model, after: list[str], stays_awake: bool) -> dict[str, Any]:
    """`stays_awake`: false for a model of an earlier residency wave, healthy once it slept."""
    assert model.gpus != "auto", "the planner places every model before compose is built"
    resident = stack.manifest.residency is not None
    environment = model_environment(model, stack.dialect, stack.cuda, stack.elastic)
    if resident:  # before the model's own env, which wins
        environment = {**residency.DEV_MODE_ENVIRONMENT, **environment}
    return {
        "command": vllm_command(model, stack.dialect, stack.cuda, sleep_mode=resident),
        "environment": environment,
        "health_test": None if stays_awake else residency.health_test(VLLM_PORT),
        **_hf_cache(stack),
        "local_model": stack.host_path(model.model) if model.local_path else None,
        "model_folder": model_folder(model),
        "shm_size": model.shm_size,
        **_published(stack.manifest.bind_address, model.port, VLLM_PORT),
        "after": after,
        "gpu_ids": [str(index) for index in model.gpus] if stack.cuda else None,
        **_compile_cache(stack),
    }


def _compile_cache(stack: Stack) -> dict[str, Any]:
    """A named volume for vLLM's torch.compile cache, where servers compile: on CUDA (CPU servers
    run eager) with the V1 engine."""
    return {
        "compile_cache": COMPILE_CACHE_VOLUME if stack.cuda and stack.dialect.compiles else None,
        "compile_cache_dir": VLLM_CACHE,
    }


def _fetch_models(stack: Stack) -> dict[str, Any]:
    return {
        "command": fetch_models_command(stack.models),
        "environment": hub_environment(stack.cuda),
        "script_path": FETCH_MODELS_SCRIPT,
        **_hf_cache(stack),
    }


def _controller(manifest: Manifest) -> dict[str, Any]:
    return {
        "command": controller_command(manifest),
        **_published(manifest.bind_address, manifest.controller.port, CONTROLLER_PORT),
    }


def _webui(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    webui = manifest.webui
    return {
        "command": webui_command(manifest),
        "environment": webui_environment(manifest),
        "logs_dir": LOGDIR,
        "endpoints_file": ENDPOINTS_FILE,
        "arena_file": arena_json.ARENA_FILE,
        **_published(webui.bind_address or manifest.bind_address, webui.port, WEBUI_PORT),
    }


def _gateway(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    settings = manifest.gateway
    keys_file = settings.keys_file
    return {
        "image": images.gateway_image(stack),
        "entrypoint": litellm.ENTRYPOINT,
        "command": litellm.command(),
        "environment": litellm.environment(),
        "health_path": litellm.HEALTH_PATH,
        "keys_file": None if keys_file is None else stack.host_path(keys_file),
        "keys_target": litellm.KEYS_FILE,
        "config_file": litellm.CONFIG_FILE,
        "auth_file": litellm.AUTH_FILE,
        **_published(settings.bind_address or manifest.bind_address, settings.port, GATEWAY_PORT),
        "models": [m.service for m in stack.models],
    }


def _residency(stack: Stack) -> dict[str, Any]:
    """The OpenAI-compatible proxy that wakes a model for its requests (arenastack/residency)."""
    manifest = stack.manifest
    assert manifest.residency is not None
    return {
        "command": residency.command(),
        "config_file": residency.CONFIG_FILE,
        **_published(manifest.bind_address, manifest.residency.port, RESIDENCY_PORT),
    }


def _gateway_configs(stack: Stack) -> dict[str, str]:
    resident = stack.manifest.residency is not None
    text = litellm.config_text(stack.models, stack.manifest.gateway.request_timeout, resident)
    return {"config": text, "auth": litellm.auth_source()}


def _leaderboard(stack: Stack) -> dict[str, Any]:
    """Rates the experiment's votes apart from the UI and leaves the result on the volume."""
    return {
        "command": arena_json.leaderboard_command(),
        "ready_command": arena_json.leaderboard_ready_command(),
        "logs_dir": LOGDIR,
        "arena_file": arena_json.ARENA_FILE,
    }


def _prometheus(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    settings = manifest.monitoring
    server = settings.prometheus
    image = images.prometheus_image(stack)
    port = prometheus.PROMETHEUS_PORT
    return {
        "image": image,
        "image_has_python": server.source == "debian",
        "command": prometheus.prometheus_arguments(server.retention),
        "config_path": prometheus.PROMETHEUS_CONFIG,
        "rules_path": prometheus.PROMETHEUS_RULES,
        "data_path": prometheus.PROMETHEUS_DATA,
        **_published(settings.bind_address or manifest.bind_address, server.port, port),
    }


def _grafana(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    settings = manifest.monitoring
    server = settings.grafana
    return {
        "image": server.image,
        "home_dashboard": grafana.GRAFANA_HOME_DASHBOARD,
        "datasources_path": grafana.GRAFANA_DATASOURCES,
        "providers_path": grafana.GRAFANA_PROVIDERS,
        **_published(
            settings.bind_address or manifest.bind_address, server.port, grafana.GRAFANA_PORT
        ),
    }


def _monitoring_files(stack: Stack) -> dict[str, dict[str, str]]:
    """The generated files, per service: {"prometheus": {"config": ..., "rules": ...}, ...}."""
    names = metric_names(stack.dialect.version)
    resident = stack.manifest.residency is not None
    files = config.config_files(stack.models, stack.manifest.device, names, resident)
    return {
        service: {
            key.removeprefix(f"{service}_"): text
            for key, text in files.items()
            if key.startswith(f"{service}_")
        }
        for service in ("prometheus", "grafana")
    }


def _published(bind_address: str, published: int | None, port: int) -> dict[str, Any]:
    """The values of a container port's mapping (templates/_macros.j2 `ports`); None for
    `published` leaves the port unpublished."""
    return {"port": port, "published_port": published, "bind_address": bind_address}


def _hf_cache(stack: Stack) -> dict[str, Any]:
    """The shared Hugging Face cache: a host folder bound in, or a named volume."""
    cache = stack.manifest.hf_cache
    if cache.host_path is not None:
        mount = {"hf_cache_type": "bind", "hf_cache_source": stack.host_path(cache.host_path)}
    else:
        mount = {"hf_cache_type": "volume", "hf_cache_source": cache.volume or "hf-cache"}
    return {**mount, "hf_home": HF_HOME}


@cache
def _environment() -> jinja2.Environment:
    return templates.template_environment(TEMPLATES, templates.compose_json)


def _fragment(name: str, values: dict[str, Any], **more: Any) -> dict[str, Any]:
    return templates.fragment(_environment(), name, values, **more)


@cache
def _compose_schema() -> dict[str, Any]:
    resource = (
        importlib.resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    )
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


def validate(document: dict[str, Any]) -> None:
    """Raise RendererBug if the document breaks the Compose specification."""
    # Imported here: building the validator costs more than rendering a large stack.
    import jsonschema

    validator_class = jsonschema.validators.validator_for(_compose_schema())
    errors = sorted(validator_class(_compose_schema()).iter_errors(document), key=str)
    if errors:
        raise RendererBug(
            f"{'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors
        )
