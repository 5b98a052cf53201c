"""What both targets build from the settled plan: the paths services share, the start order on a
shared GPU, and each service's command and environment. The compose file and the Kubernetes
folder lay these out differently; what runs is the same."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from arenastack.core.services import CONTROLLER_PORT, VLLM_PORT, WEBUI_PORT
from arenastack.manifest import Manifest, Model
from arenastack.plan.dialect import Dialect
from arenastack.render import arena_json

HF_HOME = "/root/.cache/huggingface"
# vLLM's own cache (torch.compile artifacts) in the images, which run as root.
VLLM_CACHE = "/root/.cache/vllm"
COMPILE_CACHE_VOLUME = "vllm-cache"
LOGDIR = "/logs"
ENDPOINTS_FILE = "/etc/arenastack/api_endpoints.json"
FETCH_MODELS_SCRIPT = "/etc/arenastack/fetch_models.py"


@dataclass(frozen=True)
class Stack:
    """What the stack is built from, once the plan is settled. Paths written into a compose file
    are relative to `output_dir`; the manifest's own are relative to `manifest_dir`."""

    manifest: Manifest
    models: list[Model]
    dialect: Dialect
    cuda_arch_list: str  # empty on CPU
    output_dir: Path
    manifest_dir: Path
    # GPUs whose models start together (plan.together); the others' models start in a chain.
    together: frozenset[int] = frozenset()

    @property
    def cuda(self) -> bool:
        return self.manifest.device == "cuda"

    @property
    def elastic(self) -> bool:
        """kvcached maps the KV caches of this stack's models on demand."""
        return self.cuda and self.manifest.planner.kv_cache == "elastic"

    def host_path(self, written: str) -> str:
        """An absolute (or ~) path stays as written; a relative one, written relative to the
        manifest, is re-expressed relative to the compose file."""
        path = Path(written).expanduser()
        if path.is_absolute():
            return str(path)
        return self.relative((self.manifest_dir / path).resolve())

    def relative(self, path: Path) -> str:
        """Paths relative to the compose file keep the rendered file portable with its
        checkout."""
        relative = os.path.relpath(path, self.output_dir)
        return relative if relative == "." or relative.startswith("..") else f"./{relative}"


# --- start order -----------------------------------------------------------------------------


def start_chains(models: list[Model], together: frozenset[int] = frozenset()) -> list[list[str]]:
    """For each model, the services it must wait for: the previous model on each of its GPUs,
    except on the GPUs in `together`.

    Co-located vLLM instances that size their KV cache from a memory profile and start together
    each count the other's loading as their own usage and get a tiny KV cache or fail (vLLM
    #9198); those sized in bytes, and models on different GPUs, start at once.
    """
    last_on_gpu: dict[int, str] = {}
    waits = []
    for model in models:
        assert model.gpus != "auto", "the planner places every model before compose is built"
        previous = {last_on_gpu[i] for i in model.gpus if i in last_on_gpu and i not in together}
        waits.append([m.service for m in models if m.service in previous])
        for index in model.gpus:
            last_on_gpu[index] = model.service
    return waits


def start_order(
    models: list[Model], together: frozenset[int], awake_per_gpu: int | None
) -> list[list[str]]:
    """What each model waits for: with residency (`awake_per_gpu`), the wave before its own
    (render/residency.py); otherwise the chain on its GPUs (`start_chains`)."""
    if awake_per_gpu is None:
        return start_chains(models, together)
    from arenastack.render import residency

    return residency.start_after(models, residency.waves(models, awake_per_gpu))


# --- the model servers -----------------------------------------------------------------------


def model_folder(model: Model) -> str:
    """Where a local model's folder is mounted in its server's container."""
    return f"/models/{model.service}"


def vllm_command(model: Model, dialect: Dialect, cuda: bool, sleep_mode: bool = False) -> list[str]:
    source = model_folder(model) if model.local_path else model.model
    command = dialect.launcher(source)
    command += ["--host", "0.0.0.0", "--port", str(VLLM_PORT)]
    command += ["--served-model-name", model.served_model_name]
    if cuda:
        command += ["--gpu-memory-utilization", _fraction(model.gpu_memory_utilization)]
        if model.kv_cache_memory_bytes is not None:
            command += ["--kv-cache-memory-bytes", str(model.kv_cache_memory_bytes)]
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
    if sleep_mode:  # residency (render/residency.py)
        command.append("--enable-sleep-mode")
    return command + list(model.extra_args)


def _fraction(value: float | str) -> str:
    assert not isinstance(value, str), "the planner settles 'auto' fractions first"
    return f"{value:g}"


def hub_environment(cuda: bool) -> dict[str, str | None]:
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


# kvcached (planner.kv_cache: elastic): its `.pth` hook patches vLLM at import when both are set;
# it does not support vLLM's V2 model runner, the default for Llama and Qwen3 on vLLM 0.24.
KVCACHED_ENVIRONMENT = {
    "ENABLE_KVCACHED": "true",
    "KVCACHED_AUTOPATCH": "1",
    "VLLM_USE_V2_MODEL_RUNNER": "0",
}


def model_environment(
    model: Model, dialect: Dialect, cuda: bool, elastic: bool = False
) -> dict[str, str | None]:
    environment = hub_environment(cuda)
    # fetch-models has downloaded everything; a server must not fetch on its own.
    environment["HF_HUB_OFFLINE"] = "1"
    environment |= dialect.keep_alive_environment()
    if cuda:
        environment |= dialect.environment()
        if elastic:
            environment |= KVCACHED_ENVIRONMENT
    else:
        # Without it vLLM sizes its KV cache from the host's memory, not the container's.
        environment["VLLM_CPU_KVCACHE_SPACE"] = str(model.cpu_kvcache_space)
        # The default `auto` pins every server's threads to the same first core.
        environment["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    return environment | model.env


def fetch_models_command(models: list[Model]) -> list[str]:
    hub_models = list(dict.fromkeys(m.model for m in models if m.local_path is None))
    return ["python3", FETCH_MODELS_SCRIPT, *hub_models]


# --- FastChat --------------------------------------------------------------------------------


def controller_command(manifest: Manifest) -> list[str]:
    return [
        "python3",
        "-m",
        "fastchat.serve.controller",
        "--host",
        "0.0.0.0",
        "--port",
        str(CONTROLLER_PORT),
        "--dispatch-method",
        manifest.controller.dispatch_method,
    ]


def webui_command(manifest: Manifest) -> list[str]:
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
    return command


def webui_environment(manifest: Manifest) -> dict[str, str | None]:
    return {
        "LOGDIR": arena_json.logs_folder(manifest),
        "ARENASTACK_ARENA": arena_json.ARENA_FILE,
    }
