"""Build the compose document: values prepared here, laid out by the fragments in templates/.

Every value reaches a template through `tojson`, which also doubles `$` so that Compose does not
interpolate manifest strings. The fragments are parsed back into data, assembled, validated
against the Compose specification's JSON Schema, and dumped once.
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

from arenastack import arena, endpoints, fetch_models, gateway, monitoring, serialize
from arenastack.dialect import Dialect
from arenastack.manifest import (
    DEFAULT_CUDA_BASE_IMAGE,
    Manifest,
    Model,
)
from arenastack.paths import IMAGES, TEMPLATES
from arenastack.problems import RendererBug
from arenastack.services import CONTROLLER_PORT, GATEWAY_PORT, VLLM_PORT, WEBUI_PORT
from arenastack.vllm_metrics import metric_names

HF_HOME = "/root/.cache/huggingface"
# Debian bookworm's `prometheus` package on the base image (images/prometheus).
PROMETHEUS_DEBIAN_TAG = "arenastack/prometheus:bookworm"
LOGDIR = "/logs"
ENDPOINTS_FILE = "/etc/arenastack/api_endpoints.json"
HEALTH_PROBE = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)"
LEADERBOARD_PROBE = (
    "import json, os, sys; a = json.load(open(sys.argv[1])); "
    "sys.exit(not os.path.exists(a['result'] + '/leaderboard.json'))"
)


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
    vllm_image = _vllm_image(stack)
    fastchat_image = _fastchat_image(stack)
    services: dict[str, Any] = {
        "fetch-models": _fragment("fetch-models", _fetch_models(stack, vllm_image))
    }
    for model, after in zip(stack.models, start_chains(stack.models), strict=True):
        services[model.service] = _fragment("model", _model(stack, model, after, vllm_image))
    services["controller"] = _fragment("controller", _controller(manifest, fastchat_image))
    services["webui"] = _fragment("webui", _webui(stack, fastchat_image))
    if manifest.gateway.enabled:
        services["gateway"] = _fragment("gateway", _gateway(stack))
    if arena.document(manifest, stack.models)["leaderboard"]["enabled"]:
        services["leaderboard"] = _fragment("leaderboard", _leaderboard(stack, fastchat_image))
    document = _fragment(
        "stack",
        {
            "project": manifest.project,
            "volumes": _volumes(manifest),
            "api_endpoints": endpoints.render(stack.models),
            "fetch_models": fetch_models.source(),
            "arena": arena.render(manifest, stack.models),
        },
    )
    if manifest.gateway.enabled:
        document["configs"] = {**document["configs"], **_gateway_configs(stack)}
    if manifest.monitoring.enabled:
        services |= _monitoring_services(stack)
        document["configs"] |= _monitoring_configs(stack)
        document["volumes"] |= {"prometheus-data": {}}
        if manifest.monitoring.grafana.enabled:
            document["volumes"] |= {"grafana-data": {}}
    top = {"name": document["name"]} if "name" in document else {}
    return {**top, "services": services, **_without(document, "name")}


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


def _model(stack: Stack, model: Model, after: list[str], image: dict[str, Any]) -> dict[str, Any]:
    cuda = stack.manifest.device == "cuda"
    depends_on = {"fetch-models": {"condition": "service_completed_successfully"}}
    depends_on |= {service: {"condition": "service_healthy"} for service in after}
    return {
        **image,
        # fetch-models builds the image they all share: one build serves every model.
        "build": None,
        "command": vllm_command(model, stack.dialect, cuda),
        "environment": _model_environment(model, stack.dialect, cuda),
        "volumes": _hf_cache_mount(stack) + _local_model_mount(stack, model),
        "shm_size": model.shm_size,
        "ports": _ports(stack.manifest.bind_address, model.port, VLLM_PORT),
        "healthcheck": _probe(f"http://127.0.0.1:{VLLM_PORT}/health"),
        "depends_on": depends_on,
        "deploy": _gpu_reservation(model) if cuda else None,
    }


def vllm_command(model: Model, dialect: Dialect, cuda: bool) -> list[str]:
    source = f"/models/{model.service}" if model.local_path else model.model
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


def _gpu_reservation(model: Model) -> dict[str, Any]:
    assert model.gpus != "auto"
    device = {
        "driver": "nvidia",
        "device_ids": [str(index) for index in model.gpus],
        "capabilities": ["gpu"],
    }
    return {"resources": {"reservations": {"devices": [device]}}}


def _fetch_models(stack: Stack, image: dict[str, Any]) -> dict[str, Any]:
    hub_models = list(dict.fromkeys(m.model for m in stack.models if m.local_path is None))
    return {
        **image,
        "command": ["python3", "/etc/arenastack/fetch_models.py", *hub_models],
        "environment": _hub_environment(stack.manifest.device == "cuda"),
        "volumes": _hf_cache_mount(stack),
    }


def _controller(manifest: Manifest, image: dict[str, Any]) -> dict[str, Any]:
    return {
        **image,
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
        "ports": _ports(manifest.bind_address, manifest.controller.port, CONTROLLER_PORT),
        "healthcheck": _probe(f"http://127.0.0.1:{CONTROLLER_PORT}/test_connection"),
    }


def _webui(stack: Stack, image: dict[str, Any]) -> dict[str, Any]:
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
    depends_on = {"controller": {"condition": "service_healthy"}}
    depends_on |= {m.service: {"condition": "service_healthy"} for m in stack.models}
    bind_address = webui.bind_address or manifest.bind_address
    return {
        **image,
        # The controller builds the image both use.
        "build": None,
        "command": command,
        # Each experiment writes its conversations and votes into its own folder of the volume.
        "environment": {
            "LOGDIR": arena.logs_folder(manifest),
            "ARENASTACK_ARENA": arena.ARENA_FILE,
            "ARENASTACK_ARENA_DIGEST": _arena_digest(stack),
        },
        "volumes": [{"type": "volume", "source": "arena-logs", "target": LOGDIR}],
        "ports": _ports(bind_address, webui.port, WEBUI_PORT),
        # The cheapest route gradio 4 serves, and only once the app is up.
        "healthcheck": _probe(f"http://127.0.0.1:{WEBUI_PORT}/robots.txt"),
        "depends_on": depends_on,
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
        image = {"image": tag, "build": None, "pull_policy": "missing"}
    configs = [
        {"source": "gateway_config", "target": gateway.CONFIG_FILE},
        {"source": "gateway_auth", "target": gateway.AUTH_FILE},
    ]
    volumes = None
    if settings.keys_file is not None:
        source = _host_path(stack, settings.keys_file)
        volumes = [
            {"type": "bind", "source": source, "target": gateway.KEYS_FILE, "read_only": True}
        ]
    return {
        **image,
        "entrypoint": gateway.ENTRYPOINT,
        "command": gateway.command(),
        "environment": gateway.environment(),
        "volumes": volumes,
        "configs": configs,
        "ports": _ports(
            settings.bind_address or manifest.bind_address, settings.port, GATEWAY_PORT
        ),
        "healthcheck": _probe(f"http://127.0.0.1:{GATEWAY_PORT}{gateway.HEALTH_PATH}"),
        "depends_on": {m.service: {"condition": "service_healthy"} for m in stack.models},
    }


def _gateway_configs(stack: Stack) -> dict[str, Any]:
    text = gateway.config_text(stack.models, stack.manifest.gateway.request_timeout)
    return _fragment("gateway-configs", {"config": text, "auth": gateway.auth_source()})


# --- monitoring (opt-in) -------------------------------------------------------------------


def _monitoring_services(stack: Stack) -> dict[str, Any]:
    manifest = stack.manifest
    settings = manifest.monitoring
    bind_address = settings.bind_address or manifest.bind_address
    prometheus = settings.prometheus
    if prometheus.source == "debian":
        base = {"BASE_IMAGE": manifest.images.fastchat.base_image}
        image = _built_image(stack, PROMETHEUS_DEBIAN_TAG, IMAGES / "prometheus", base)
        # Debian's image has Python and no wget; the official one has busybox wget only.
        ready = _probe(f"http://127.0.0.1:{monitoring.PROMETHEUS_PORT}/-/ready")
    else:
        image = {"image": prometheus.image, "build": None, "pull_policy": "missing"}
        ready = _wget(f"http://127.0.0.1:{monitoring.PROMETHEUS_PORT}/-/ready")
    services = {
        "prometheus": _fragment(
            "prometheus",
            {
                **image,
                "command": monitoring.prometheus_arguments(prometheus.retention),
                "config_path": monitoring.PROMETHEUS_CONFIG,
                "rules_path": monitoring.PROMETHEUS_RULES,
                "volumes": [
                    {"type": "volume", "source": "prometheus-data", "target": "/prometheus"}
                ],
                "ports": _ports(bind_address, prometheus.port, monitoring.PROMETHEUS_PORT),
                "healthcheck": ready,
            },
        )
    }
    grafana = settings.grafana
    if grafana.enabled:
        services["grafana"] = _fragment(
            "grafana",
            {
                "image": grafana.image,
                "home_dashboard": monitoring.GRAFANA_HOME_DASHBOARD,
                "datasources_path": monitoring.GRAFANA_DATASOURCES,
                "providers_path": monitoring.GRAFANA_PROVIDERS,
                "volumes": [
                    {"type": "volume", "source": "grafana-data", "target": "/var/lib/grafana"}
                ],
                "ports": _ports(bind_address, grafana.port, monitoring.GRAFANA_PORT),
                "healthcheck": _wget(f"http://127.0.0.1:{monitoring.GRAFANA_PORT}/api/health"),
                "depends_on": {"prometheus": {"condition": "service_started"}},
            },
        )
    return services


def _monitoring_configs(stack: Stack) -> dict[str, Any]:
    names = metric_names(stack.dialect.version)
    files = monitoring.config_files(stack.models, stack.manifest.device, names)
    configs = _fragment("monitoring-configs", files)
    if not stack.manifest.monitoring.grafana.enabled:
        configs = {k: v for k, v in configs.items() if not k.startswith("grafana_")}
    return configs


def _wget(url: str) -> list[str]:
    return ["CMD", "wget", "-q", "-O", "/dev/null", url]


def _leaderboard(stack: Stack, image: dict[str, Any]) -> dict[str, Any]:
    """Rates the experiment's votes apart from the UI and leaves the result on the volume."""
    return {
        **image,
        "build": None,
        "environment": {"ARENASTACK_ARENA_DIGEST": _arena_digest(stack)},
        "command": ["python3", "-m", "arenastack.leaderboard_service", "--arena", arena.ARENA_FILE],
        "volumes": [{"type": "volume", "source": "arena-logs", "target": LOGDIR}],
        # Healthy once the first result is written (an empty table when there are no votes).
        "healthcheck": ["CMD", "python3", "-c", LEADERBOARD_PROBE, arena.ARENA_FILE],
    }


def _arena_digest(stack: Stack) -> str:
    """Compose does not recreate a container when only an inline config's content changed: the
    digest in its environment makes a new arena.json (another experiment, title, ...) do so."""
    text = arena.render(stack.manifest, stack.models)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- shared pieces -------------------------------------------------------------------------


def _probe(url: str) -> list[str]:
    # The images need not have curl: Python's standard library makes the request.
    return ["CMD", "python3", "-c", HEALTH_PROBE, url]


def _ports(bind_address: str, published: int | None, target: int) -> list[dict[str, Any]] | None:
    if published is None:
        return None
    return [
        {"target": target, "published": str(published), "host_ip": bind_address, "protocol": "tcp"}
    ]


def _hf_cache_mount(stack: Stack) -> list[dict[str, Any]]:
    cache = stack.manifest.hf_cache
    if cache.host_path is not None:
        source = _host_path(stack, cache.host_path)
        return [{"type": "bind", "source": source, "target": HF_HOME}]
    return [{"type": "volume", "source": cache.volume or "hf-cache", "target": HF_HOME}]


def _local_model_mount(stack: Stack, model: Model) -> list[dict[str, Any]]:
    if model.local_path is None:
        return []
    return [
        {
            "type": "bind",
            "source": _host_path(stack, model.model),
            "target": f"/models/{model.service}",
            "read_only": True,
        }
    ]


def _volumes(manifest: Manifest) -> dict[str, Any]:
    volumes: dict[str, Any] = {"arena-logs": {}}
    if manifest.hf_cache.host_path is None:
        volumes[manifest.hf_cache.volume or "hf-cache"] = {}
    return volumes


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
    return relative if relative.startswith("..") else f"./{relative}"


def _vllm_image(stack: Stack) -> dict[str, Any]:
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


def _fastchat_image(stack: Stack) -> dict[str, Any]:
    settings = stack.manifest.images.fastchat
    return _built_image(
        stack, settings.tag, IMAGES / "fastchat", {"BASE_IMAGE": settings.base_image}
    )


def _built_image(stack: Stack, tag: str, context: Path, args: dict[str, str]) -> dict[str, Any]:
    """Images are built here, never pulled: there may be no registry, and a public image of the
    same name must not win. `never` builds a missing image once and leaves an existing one alone
    (`docker compose build` rebuilds). Only one service per image carries `build:`; Compose would
    build the same image once per service that does."""
    return {
        "image": tag,
        "build": {"context": _relative(stack, context), "args": args},
        "pull_policy": "never",
    }


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
    )
    environment.filters["tojson"] = tojson
    return environment


@cache
def _environment() -> jinja2.Environment:
    return template_environment(TEMPLATES, compose_json)


def _fragment(name: str, values: dict[str, Any]) -> dict[str, Any]:
    text = _environment().get_template(f"{name}.yaml.j2").render(values)
    data = serialize.load(text)
    assert isinstance(data, dict)
    # A null value means "not set" for this stack: the key is left out.
    return {key: value for key, value in data.items() if value is not None}


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in keys}


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
