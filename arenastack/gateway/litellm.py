"""The gateway: one OpenAI-compatible endpoint over every model of the experiment (LiteLLM proxy).

Clients (the openai package, lm-eval's chat-completions backend, curl) point at one base URL and
pick a model by its served name or its display name; LiteLLM forwards the request to that model's
vLLM server over the compose network. The proxy's config is generated here from the resolved
models and mounted into the gateway container as an inline compose config.

The master key is never written anywhere: LiteLLM reads LITELLM_MASTER_KEY from its environment,
which compose fills by name from the shell or `.env`. Without one, LiteLLM (>= 1.108) refuses to
start; rendering warns beforehand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from arenastack.core.services import GATEWAY_PORT, SERVER_KEEP_ALIVE_S, model_api_base
from arenastack.manifest import Manifest, Model

# Keep equal to images/litellm/requirements.txt (tests check): the newest litellm[proxy] whose
# extra resolves from PyPI alone (1.110.x's needs a package PyPI does not serve).
LITELLM_VERSION = "1.108.7"
# The LiteLLM project's image of that version (tags `main-v<version>` per release); pulled by users
# with a registry. Not pulled or run here: this machine reaches no registry.
OFFICIAL_IMAGE = f"ghcr.io/berriai/litellm:main-v{LITELLM_VERSION}"
BUILT_IMAGE = f"arenastack/litellm:{LITELLM_VERSION}"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
CONFIG_DIR = "/etc/arenastack/gateway"
CONFIG_FILE = f"{CONFIG_DIR}/config.yaml"
# LiteLLM imports `custom_auth` modules from the config file's folder.
AUTH_MODULE = "keys_auth"
AUTH_FILE = f"{CONFIG_DIR}/{AUTH_MODULE}.py"
KEYS_FILE = f"{CONFIG_DIR}/keys.yaml"
# vLLM's servers run without --api-key; LiteLLM still wants a value to send.
NO_API_KEY = "none"
PROVIDER = "hosted_vllm"
# LiteLLM's `GET /health` (what `render.py status` asks, operate/gateway_health.py) sends every
# model a real chat request at once: by default up to 16 tokens and 60 s each
# (litellm/proxy/health_check.py, 1.108.7). One token is enough to show the model answers and
# costs a CPU model little; a model that hangs is reported after this many seconds instead.
HEALTH_CHECK_MAX_TOKENS = 1
HEALTH_CHECK_TIMEOUT_S = 15
# Answered without a key once the proxy has loaded its config: the container's health route.
HEALTH_PATH = "/health/liveliness"
ENTRYPOINT = ["litellm"]


def command() -> list[str]:
    """The proxy's arguments after ENTRYPOINT: the generated config, on every interface, and
    idle connections kept longer than clients keep them (core/services.py)."""
    return ["--config", CONFIG_FILE, "--host", "0.0.0.0", "--port", str(GATEWAY_PORT),
            "--keepalive_timeout", str(SERVER_KEEP_ALIVE_S)]  # fmt: skip


def environment() -> dict[str, str | None]:
    """The container's variables; None is passed by name (Compose: from the shell or .env;
    Kubernetes: from the user's Secret), so the value is never in a rendered file."""
    return {
        MASTER_KEY_ENV: None,
        # The cost map inside the package; otherwise LiteLLM fetches it from GitHub at start.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def config(
    models: list[Model], request_timeout: int, via_residency: bool = False
) -> dict[str, Any]:
    """LiteLLM's config: one deployment per model under its served name, the display name as an
    alias of it, no retries (a model that is down fails at once rather than after backoff), and
    our key check (gateway_auth.py) in place of LiteLLM's own."""
    model_list = [
        {
            "model_name": model.served_model_name,
            "litellm_params": {
                # LiteLLM splits the provider off at the first `/`; the rest is sent as `model`.
                "model": f"{PROVIDER}/{model.served_model_name}",
                "api_base": model_api_base(model.service, via_residency),
                "api_key": NO_API_KEY,
                "timeout": request_timeout,
                "stream_timeout": request_timeout,
                "max_retries": 0,
            },
            # id: the deployment id LiteLLM reports (/model/info, /health): the service name.
            "model_info": {
                "id": model.service,
                "health_check_max_tokens": HEALTH_CHECK_MAX_TOKENS,
                "health_check_timeout": HEALTH_CHECK_TIMEOUT_S,
            },
        }
        for model in models
    ]
    aliases = {
        model.display_name: model.served_model_name
        for model in models
        if model.display_name != model.served_model_name
    }
    general = {
        # Read from the container's environment at start; the value is never in this file.
        # LiteLLM refuses to start without it.
        "master_key": f"os.environ/{MASTER_KEY_ENV}",
        # LiteLLM's own check answers a missing key with 500 and a wrong one with 400 ("No
        # connected db") when it runs without its database, as here; ours answers 401, and also
        # accepts the per-user keys of gateway.keys_file.
        "custom_auth": f"{AUTH_MODULE}.user_api_key_auth",
    }
    return {
        "model_list": model_list,
        "router_settings": {"model_group_alias": aliases, "num_retries": 0},
        "litellm_settings": {"num_retries": 0, "request_timeout": request_timeout},
        "general_settings": general,
    }


def config_text(models: list[Model], request_timeout: int, via_residency: bool = False) -> str:
    """The config as LiteLLM reads it (yaml.safe_load). PyYAML writes every string so that its
    reader gives it back unchanged: quotes, newlines, `$`, line separators, astral characters."""
    header = "# Generated by render.py from the manifest; LiteLLM proxy config.\n"
    body = yaml.safe_dump(
        config(models, request_timeout, via_residency),
        sort_keys=False,
        allow_unicode=False,
        width=2**16,
        default_flow_style=False,
    )
    return header + body


def image_tag(manifest: Manifest) -> str:
    gateway = manifest.gateway
    return gateway.tag or (BUILT_IMAGE if gateway.build else OFFICIAL_IMAGE)


def auth_source() -> str:
    """The custom-auth module mounted beside the config (LiteLLM imports it from there)."""
    return (Path(__file__).parent / "keys_auth.py").read_text(encoding="utf-8")
