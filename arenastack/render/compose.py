"""Build the compose document: values prepared here, laid out by the fragments in templates/.

The templates hold the structure (keys, nesting, which keys are optional; the pieces services
share are macros in templates/_macros.j2); this module passes them scalars, names, commands and
environments. Every value reaches a template through `tojson`, which also doubles `$` so that
Compose does not interpolate manifest strings. The fragments are parsed back into data,
assembled, validated against the Compose specification's JSON Schema, and dumped once.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from arenastack.core import serialize
from arenastack.core.paths import IMAGES, REPO, TEMPLATES
from arenastack.core.problems import RendererBug
from arenastack.core.services import CONTROLLER_PORT, GATEWAY_PORT, VLLM_PORT, WEBUI_PORT
from arenastack.gateway import litellm as gateway
from arenastack.manifest import (
    DEFAULT_CUDA_BASE_IMAGE,
    Manifest,
    Model,
)
from arenastack.monitoring import config, grafana, prometheus
from arenastack.plan.dialect import Dialect
from arenastack.plan.vllm_metrics import metric_names
from arenastack.render import arena_json as arena
from arenastack.render import endpoints, fetch_models

HF_HOME = "/root/.cache/huggingface"
# Debian bookworm's `prometheus` package on the base image (images/prometheus).
PROMETHEUS_DEBIAN_TAG = "arenastack/prometheus:bookworm"
LOGDIR = "/logs"
ENDPOINTS_FILE = "/etc/arenastack/api_endpoints.json"
FETCH_MODELS_SCRIPT = "/etc/arenastack/fetch_models.py"


@dataclass(frozen=True)
class Stack:
    """What the compose document is built from, once the plan is settled."""

    manifest: Manifest
    models: list[Model]
    dialect: Dialect
    cuda_arch_list: str  # empty on CPU
    output_dir: Path
    manifest_dir: Path


def build_document(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    vllm = _vllm_image(stack)
    fastchat = _fastchat_image(stack)
    services = {"fetch-models": _fragment("fetch-models", _fetch_models(stack), image=vllm)}
    for model, after in zip(stack.models, start_chains(stack.models), strict=True):
        services[model.service] = _fragment("model", _model(stack, model, after), image=vllm)
    services["controller"] = _fragment("controller", _controller(manifest), image=fastchat)
    services["webui"] = _fragment("webui", _webui(stack), image=fastchat)
    gateway_on = manifest.gateway.enabled
    prometheus_on = manifest.monitoring.enabled
    grafana_on = prometheus_on and manifest.monitoring.grafana.enabled
    if gateway_on:
        services["gateway"] = _fragment("gateway", _gateway(stack))
    if arena.leaderboard_enabled(manifest):
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
            "api_endpoints": endpoints.render(stack.models),
            "fetch_models": fetch_models.source(),
            "arena": arena.render(manifest, stack.models),
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
    in a label makes a new arena.json, gateway or Prometheus config reach the running stack."""
    contents = [configs[mount["source"]]["content"] for mount in service.get("configs", [])]
    if contents:
        digest = hashlib.sha256(json.dumps(contents).encode()).hexdigest()[:16]
        service["labels"] = {CONFIG_DIGEST_LABEL: digest}


# --- start order ---------------------------------------------------------------------------


def start_chains(models: list[Model]) -> list[list[str]]:
    """For each model, the services it must wait for: the previous model on each of its GPUs.

    Co-located vLLM instances that start together each count the other's loading as their own
    usage and get a tiny KV cache or fail (vLLM #9198); models on different GPUs start at once.
    """
    last_on_gpu: dict[int, str] = {}
    waits = []
    for model in models:
        assert model.gpus != "auto", "the planner places every model before compose is built"
        previous = {last_on_gpu[i] for i in model.gpus if i in last_on_gpu}
        waits.append([m.service for m in models if m.service in previous])
        for index in model.gpus:
            last_on_gpu[index] = model.service
    return waits


# --- services ------------------------------------------------------------------------------
# Each returns the values its template (templates/<name>.yaml.j2) lays out. Commands and
# environments are prepared here whole: the Kubernetes target runs the same ones.


def _model(stack: Stack, model: Model, after: list[str]) -> dict[str, Any]:
    cuda = stack.manifest.device == "cuda"
    assert model.gpus != "auto", "the planner places every model before compose is built"
    return {
        "command": vllm_command(model, stack.dialect, cuda),
        "environment": _model_environment(model, stack.dialect, cuda),
        **_hf_cache(stack),
        "local_model": _host_path(stack, model.model) if model.local_path else None,
        "model_folder": _model_folder(model),
        "shm_size": model.shm_size,
        **_published(stack.manifest.bind_address, model.port, VLLM_PORT),
        "after": after,
        "gpu_ids": [str(index) for index in model.gpus] if cuda else None,
    }


def _model_folder(model: Model) -> str:
    """Where a local model's folder is mounted in its server's container."""
    return f"/models/{model.service}"


def vllm_command(model: Model, dialect: Dialect, cuda: bool) -> list[str]:
    source = _model_folder(model) if model.local_path else model.model
    command = dialect.launcher(source)
    command += ["--host", "0.0.0.0", "--port", str(VLLM_PORT)]
    command += ["--served-model-name", model.served_model_name]
    if cuda:
        command += ["--gpu-memory-utilization", _fraction(model.gpu_memory_utilization)]
        if model.tensor_parallel_size > 1:
            command += ["--tensor-parallel-size", str(model.tensor_parallel_size)]
    if model.dtype != "auto":
        command += ["--dtype", model.dtype]
    if model.kv_cache_dtype != "auto":
        command += ["--kv-cache-dtype", model.kv_cache_dtype]
    if model.max_model_len is not None:
        command += ["--max-model-len", str(model.max_model_len)]
    if model.enforce_eager:
        command.append("--enforce-eager")
    if model.trust_remote_code:
        command.append("--trust-remote-code")
    if cuda and dialect.has("--device"):
        command += ["--device", "cuda"]
    if dialect.has("--disable-log-requests"):
        command.append("--disable-log-requests")
    return command + list(model.extra_args)


def _fraction(value: float | str) -> str:
    assert not isinstance(value, str), "the planner settles 'auto' fractions first"
    return f"{value:g}"


def _hub_environment(cuda: bool) -> dict[str, str | None]:
    """What every container that may talk to the Hugging Face hub gets."""
    environment: dict[str, str | None] = {
        "HF_HOME": HF_HOME,
        # Passed by name: the value stays in the shell or .env, never in this file.
        "HF_TOKEN": None,
    }
    if cuda:
        # The CUDA image has hf_transfer; the CPU image's huggingface_hub (>= 1.0) has none.
        environment["HF_HUB_ENABLE_HF_TRANSFER"] = "1"
    return environment


def _model_environment(model: Model, dialect: Dialect, cuda: bool) -> dict[str, str | None]:
    environment = _hub_environment(cuda)
    # fetch-models has downloaded everything; a server must not fetch on its own.
    environment["HF_HUB_OFFLINE"] = "1"
    if cuda:
        environment |= dialect.environment()
    else:
        # Without it vLLM sizes its KV cache from the host's memory, not the container's.
        environment["VLLM_CPU_KVCACHE_SPACE"] = str(model.cpu_kvcache_space)
        # The default `auto` pins every server's threads to the same first core.
        environment["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    return environment | model.env


def _fetch_models(stack: Stack) -> dict[str, Any]:
    hub_models = list(dict.fromkeys(m.model for m in stack.models if m.local_path is None))
    return {
        "command": ["python3", FETCH_MODELS_SCRIPT, *hub_models],
        "environment": _hub_environment(stack.manifest.device == "cuda"),
        "script_path": FETCH_MODELS_SCRIPT,
        **_hf_cache(stack),
    }


def _controller(manifest: Manifest) -> dict[str, Any]:
    return {
        "command": [
            "python3",
            "-m",
            "fastchat.serve.controller",
            "--host",
            "0.0.0.0",
            "--port",
            str(CONTROLLER_PORT),
            "--dispatch-method",
            manifest.controller.dispatch_method,
        ],
        **_published(manifest.bind_address, manifest.controller.port, CONTROLLER_PORT),
    }


def _webui(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    webui = manifest.webui
    module = "gradio_web_server_multi" if webui.mode == "multi" else "gradio_web_server"
    command = [
        "python3",
        "-m",
        "arenastack_fastchat",
        module,
        "--host",
        "0.0.0.0",
        "--port",
        str(WEBUI_PORT),
        "--controller-url",
        f"http://controller:{CONTROLLER_PORT}",
        "--register-api-endpoint-file",
        ENDPOINTS_FILE,
        "--concurrency-count",
        str(webui.concurrency_count),
        "--model-list-mode",
        "once",
    ]
    if webui.share:
        command.append("--share")
    return {
        "command": command,
        "environment": {
            "LOGDIR": arena.logs_folder(manifest),
            "ARENASTACK_ARENA": arena.ARENA_FILE,
        },
        "logs_dir": LOGDIR,
        "endpoints_file": ENDPOINTS_FILE,
        "arena_file": arena.ARENA_FILE,
        **_published(webui.bind_address or manifest.bind_address, webui.port, WEBUI_PORT),
        "models": [m.service for m in stack.models],
    }


def _gateway(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    settings = manifest.gateway
    tag = gateway.image_tag(manifest)
    if settings.build:
        args = {"BASE_IMAGE": settings.base_image}
        image = _built_image(stack, tag, IMAGES / "litellm", args)
    else:
        # LiteLLM's own image, pinned by version: pulled once if missing.
        image = Image(tag, pull_policy="missing")
    keys_file = settings.keys_file
    return {
        "image": image,
        "entrypoint": gateway.ENTRYPOINT,
        "command": gateway.command(),
        "environment": gateway.environment(),
        "health_path": gateway.HEALTH_PATH,
        "keys_file": None if keys_file is None else _host_path(stack, keys_file),
        "keys_target": gateway.KEYS_FILE,
        "config_file": gateway.CONFIG_FILE,
        "auth_file": gateway.AUTH_FILE,
        **_published(settings.bind_address or manifest.bind_address, settings.port, GATEWAY_PORT),
        "models": [m.service for m in stack.models],
    }


def _gateway_configs(stack: Stack) -> dict[str, str]:
    text = gateway.config_text(stack.models, stack.manifest.gateway.request_timeout)
    return {"config": text, "auth": gateway.auth_source()}


def _leaderboard(stack: Stack) -> dict[str, Any]:
    """Rates the experiment's votes apart from the UI and leaves the result on the volume."""
    return {
        "command": arena.leaderboard_command(),
        "ready_command": arena.leaderboard_ready_command(),
        "logs_dir": LOGDIR,
        "arena_file": arena.ARENA_FILE,
    }


# --- monitoring (opt-in) -------------------------------------------------------------------


def _prometheus(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    settings = manifest.monitoring
    server = settings.prometheus
    debian = server.source == "debian"
    if debian:
        base = {"BASE_IMAGE": manifest.images.fastchat.base_image}
        image = _built_image(stack, PROMETHEUS_DEBIAN_TAG, IMAGES / "prometheus", base)
    else:
        image = Image(server.image, pull_policy="missing")
    port = prometheus.PROMETHEUS_PORT
    return {
        "image": image,
        "image_has_python": debian,
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
    files = config.config_files(stack.models, stack.manifest.device, names)
    return {
        service: {
            key.removeprefix(f"{service}_"): text
            for key, text in files.items()
            if key.startswith(f"{service}_")
        }
        for service in ("prometheus", "grafana")
    }


# --- shared pieces -------------------------------------------------------------------------


def _published(bind_address: str, published: int | None, port: int) -> dict[str, Any]:
    """The values of a container port's mapping (templates/_macros.j2 `ports`); None for
    `published` leaves the port unpublished."""
    return {"port": port, "published_port": published, "bind_address": bind_address}


def _hf_cache(stack: Stack) -> dict[str, Any]:
    """The shared Hugging Face cache: a host folder bound in, or a named volume."""
    cache = stack.manifest.hf_cache
    if cache.host_path is not None:
        mount = {"hf_cache_type": "bind", "hf_cache_source": _host_path(stack, cache.host_path)}
    else:
        mount = {"hf_cache_type": "volume", "hf_cache_source": cache.volume or "hf-cache"}
    return {**mount, "hf_home": HF_HOME}


def _host_path(stack: Stack, written: str) -> str:
    """An absolute (or ~) path stays as written; a relative one, written relative to the
    manifest, is re-expressed relative to the compose file."""
    path = Path(written).expanduser()
    if path.is_absolute():
        return str(path)
    return _relative(stack, (stack.manifest_dir / path).resolve())


def _relative(stack: Stack, path: Path) -> str:
    """Paths relative to the compose file keep the rendered file portable with its checkout."""
    relative = os.path.relpath(path, stack.output_dir)
    return relative if relative == "." or relative.startswith("..") else f"./{relative}"


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


def _vllm_image(stack: Stack) -> Image:
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
    return _built_image(stack, tag, context, args)


def _fastchat_image(stack: Stack) -> Image:
    """Built from the repository's root (its .dockerignore lets through what the Dockerfile
    copies), so that the leaderboard service runs the repository's own arena package."""
    settings = stack.manifest.images.fastchat
    dockerfile = (IMAGES / "fastchat" / "Dockerfile").relative_to(REPO).as_posix()
    args = {"BASE_IMAGE": settings.base_image}
    return _built_image(stack, settings.tag, REPO, args, dockerfile)


def _built_image(
    stack: Stack, tag: str, context: Path, args: dict[str, str], dockerfile: str | None = None
) -> Image:
    """Images are built here, never pulled: there may be no registry, and a public image of the
    same name must not win. `never` builds a missing image once and leaves an existing one alone
    (`docker compose build` rebuilds)."""
    context_path = _relative(stack, context)
    return Image(tag, pull_policy="never", context=context_path, args=args, dockerfile=dockerfile)


# --- templates -----------------------------------------------------------------------------

# Characters YAML readers reject or fold (line and paragraph separators, NEL, BOM, controls)
# are written as escapes; JSON escapes the rest.
_UNSAFE_FOR_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")


def compose_json(value: Any) -> str:
    """JSON (which is YAML) with every `$` doubled, so Compose reads it back verbatim."""
    text = json.dumps(_escape_dollars(value), ensure_ascii=False)
    return _UNSAFE_FOR_YAML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escape_dollars(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [_escape_dollars(item) for item in value]
    if isinstance(value, dict):
        return {_escape_dollars(k): _escape_dollars(v) for k, v in value.items()}
    return value


def template_environment(folder: Path, tojson: Callable[[Any], str]) -> jinja2.Environment:
    """Templates that fail on a missing value and write every value through `tojson`: the
    compose fragments here, the Kubernetes resources in kubernetes.py."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # A block tag's line leaves nothing behind, so a template's `{% if %}` around an optional
        # key reads like the fragment with or without it.
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["tojson"] = tojson
    return environment


@cache
def _environment() -> jinja2.Environment:
    return template_environment(TEMPLATES, compose_json)


def _fragment(name: str, values: dict[str, Any], **more: Any) -> dict[str, Any]:
    text = _environment().get_template(f"{name}.yaml.j2").render(values, **more)
    data = serialize.load(text)
    assert isinstance(data, dict)
    return data


# --- validation and output -----------------------------------------------------------------


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


def dump(document: dict[str, Any], header: str) -> str:
    body = serialize.dump(document)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + body
