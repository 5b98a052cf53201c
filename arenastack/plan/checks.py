"""Checks across models, run before anything is written.

Each returns problems (the render fails, exit status 2) or warnings (printed, the render goes on),
always naming the manifest path of the field to change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from arenastack.core.problems import Problem, field_path
from arenastack.core.services import STACK_SERVICES
from arenastack.manifest import Manifest, Model
from arenastack.plan import memory
from arenastack.plan.dialect import Dialect, cuda_dialect, vllm_flag
from arenastack.plan.memory import MemoryModel, safe_fraction_total
from arenastack.plan.sharing import fraction_terms, fraction_total, models_by_gpu

# Flags the renderer writes itself from manifest fields; extra_args must not repeat them.
GENERATED_FLAGS = {
    "--model": "model",
    "--host": "(set by the stack)",
    "--port": "port",
    "--served-model-name": "served_model_name",
    "--gpu-memory-utilization": "gpu_memory_utilization",
    "--kv-cache-memory-bytes": "kv_cache_memory_bytes",
    "--tensor-parallel-size": "gpu (a list)",
    "-tp": "gpu (a list)",
    "--dtype": "dtype",
    "--kv-cache-dtype": "kv_cache_dtype",
    "--max-model-len": "max_model_len",
    "--enforce-eager": "enforce_eager",
    "--trust-remote-code": "trust_remote_code",
    "--device": "gpu",
}

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_KEY", re.IGNORECASE)


def problems(
    manifest: Manifest, models: list[Model], gpu_count: int | None, dialect: Dialect
) -> list[Problem]:
    """Every problem across models. `gpu_count` is None when the inventory is unknown (it has a
    problem of its own): then GPU indices are not checked against it."""
    found: list[Problem] = []
    found += _service_names(manifest, models)
    found += _gpu_indices(manifest, models, gpu_count)
    found += _fraction_sums(manifest, models)
    found += _unique_ports(manifest, models)
    found += _unique_names(models)
    found += _extra_args(models, dialect)
    found += _secrets(manifest, models)
    found += _local_models(models)
    found += _kv_cache_sizing(manifest, models, dialect)
    return found


def warnings(manifest: Manifest, models: list[Model], gpu_memory_gib: list[float]) -> list[Problem]:
    found: list[Problem] = []
    if manifest.device == "cuda":
        dialect = cuda_dialect(manifest.images.vllm.vllm_ref)
        mm = memory.for_version(dialect.version)
        chained = [m for m in models if m.kv_cache_memory_bytes is None]
        found += tight_gpus(chained, gpu_memory_gib, mm)
        if manifest.planner.kv_cache == "elastic" and dialect.version > ELASTIC_TESTED_UP_TO:
            found.append(
                Problem(
                    "planner.kv_cache",
                    f"kvcached is tested by its authors with vLLM up to v0.24.0, not "
                    f"{dialect.label}: check that the servers start",
                )
            )
    if manifest.webui.mode == "multi" and len(models) < 2:
        found.append(
            Problem("models", "the arena and side-by-side tabs need at least two enabled models")
        )
    if manifest.webui.share:
        found.append(Problem("webui.share", "the web UI gets a public gradio.live link"))
    return found


# kvcached patches vLLM's V1 engine, which the renderer leaves on from v0.9.2 (before, it sets
# VLLM_USE_V1=0 for co-located servers: plan/dialect.py).
ELASTIC_FROM = (0, 9, 2)
ELASTIC_TESTED_UP_TO = (0, 24, 0)


def _kv_cache_sizing(
    manifest: Manifest, models: list[Model], dialect: Dialect
) -> Iterator[Problem]:
    if manifest.planner.kv_cache == "elastic":
        if manifest.device != "cuda":
            yield Problem(
                "planner.kv_cache",
                "'elastic' maps KV-cache pages through CUDA's virtual memory (kvcached): "
                "device: cpu has none; use 'exact'",
            )
        elif dialect.version < ELASTIC_FROM:
            yield Problem(
                "planner.kv_cache",
                f"'elastic' needs vLLM's V1 engine, which kvcached patches: images.vllm.vllm_ref "
                f"{dialect.label} runs the V0 engine here; use v0.9.2 or later, or 'exact'",
            )
    for model in models:
        if model.kv_cache_memory_bytes is None or "kv_cache_memory_bytes" in model.unchecked:
            continue
        path = model.path_of("kv_cache_memory_bytes")
        if manifest.device != "cuda":
            yield Problem(path, "sizes a GPU's KV cache; on device: cpu set cpu_kvcache_space")
        elif reason := dialect.unsupported("--kv-cache-memory-bytes"):
            yield Problem(path, f"{reason}; images.vllm.vllm_ref is {dialect.label}")


def _service_names(manifest: Manifest, models: list[Model]) -> Iterator[Problem]:
    if not models:
        yield Problem("models", "every model is disabled: nothing to run")
    for service in manifest.models:
        if service in STACK_SERVICES:
            yield Problem(
                field_path("models", service),
                f"{service!r} is the name of one of the stack's own services "
                f"({', '.join(STACK_SERVICES)}); choose another",
            )


def _gpu_indices(
    manifest: Manifest, models: list[Model], gpu_count: int | None
) -> Iterator[Problem]:
    for model in models:
        if model.gpus == "auto":
            continue
        path = model.path_of("gpu")
        if manifest.device == "cpu":
            if len(model.gpus) > 1:
                yield Problem(path, "tensor parallelism (a list of GPUs) needs device: cuda")
            continue
        missing = [index for index in model.gpus if gpu_count is not None and index >= gpu_count]
        if missing:
            assert gpu_count is not None
            have = f"GPUs 0-{gpu_count - 1}" if gpu_count > 1 else "only GPU 0"
            yield Problem(path, f"GPU {missing[0]} does not exist: the inventory has {have}")
        if len(set(model.gpus)) != len(model.gpus):
            yield Problem(path, f"{list(model.gpus)} names a GPU twice")
        size = len(model.gpus)
        if size & (size - 1):
            yield Problem(
                path, f"tensor parallel over {size} GPUs: vLLM needs a power of two (1, 2, 4, 8)"
            )


def _fraction_sums(manifest: Manifest, models: list[Model]) -> Iterator[Problem]:
    if manifest.device == "cpu":
        return
    for index, sharing in models_by_gpu(models).items():
        if all(m.kv_cache_memory_bytes is not None for m in sharing):
            continue  # sized in bytes: their footprints are checked against the budget instead
        total = fraction_total(sharing)
        if total > 1.0 + 1e-9:
            yield Problem(
                sharing[-1].path_of("gpu_memory_utilization"),
                f"GPU {index} is over-committed: {fraction_terms(sharing)} = {total:.2f} > 1.0",
            )


def tight_gpus(
    models: list[Model], gpu_memory_gib: list[float], mm: MemoryModel = memory.V0_8
) -> Iterator[Problem]:
    for index, sharing in models_by_gpu(models).items():
        if index >= len(gpu_memory_gib):
            continue
        total = fraction_total(sharing)
        # What each earlier server holds outside its fraction, for this vLLM version (memory.py).
        outside = mm.outside_gib(all(m.enforce_eager for m in sharing[:-1]))
        bound = safe_fraction_total(len(sharing), gpu_memory_gib[index], outside, mm)
        if bound < total <= 1.0 + 1e-9:
            terms = fraction_terms(sharing)
            yield Problem(
                sharing[-1].path_of("gpu_memory_utilization"),
                f"GPU {index} is nearly full: {terms} = {total:.2f}, above the safe "
                f"{bound:.3f} for {len(sharing)} servers on {gpu_memory_gib[index]:.0f} GiB. Each "
                f"earlier server also holds ~{outside} GiB outside its fraction (CUDA context and "
                f"more; {mm.name}), and current "
                "vLLM refuses to start unless free memory >= total x fraction; lower a fraction "
                "if a later server fails at start-up",
            )


def _unique_ports(manifest: Manifest, models: list[Model]) -> Iterator[Problem]:
    taken: dict[int, str] = {manifest.webui.port: "webui.port"}
    if manifest.controller.port is not None:
        taken.setdefault(manifest.controller.port, "controller.port")
        if manifest.controller.port == manifest.webui.port:
            yield Problem("controller.port", f"{manifest.webui.port} is also webui.port")
    for model in models:
        if model.port is None:
            continue
        path = model.path_of("port")
        if model.port in taken:
            yield Problem(path, f"host port {model.port} is also {taken[model.port]}")
        else:
            taken[model.port] = path


def _unique_names(models: list[Model]) -> Iterator[Problem]:
    for attribute in ("display_name", "served_model_name"):
        seen: dict[str, str] = {}
        for model in models:
            name = getattr(model, attribute)
            if name in seen:
                yield Problem(
                    model.path_of(attribute),
                    f"{name!r} is also the {attribute} of {seen[name]}; set a unique {attribute}",
                )
            else:
                seen[name] = model.service


def _extra_args(models: list[Model], dialect: Dialect) -> Iterator[Problem]:
    for model in models:
        path = model.path_of("extra_args")
        for position, argument in enumerate(model.extra_args):
            flag = vllm_flag(argument)
            if flag is None:
                continue
            generated = _generated_flag(flag)
            if generated is not None:
                spelled = "" if argument == generated else f" ({argument!r})"
                yield Problem(
                    path,
                    f"{generated}{spelled} is written by the renderer; set the manifest field "
                    f"{GENERATED_FLAGS[generated]} instead (item {position})",
                )
            elif reason := dialect.unsupported(flag):
                yield Problem(path, f"{reason} (the image runs vLLM {dialect.label})")


def _generated_flag(flag: str) -> str | None:
    """The rendered flag that `flag` would set in vLLM's parser: the same flag, or an
    abbreviation of it (argparse expands unique prefixes, and rejects ambiguous ones)."""
    if flag in GENERATED_FLAGS:
        return flag
    if flag.startswith("--") and len(flag) > 2:
        for generated in GENERATED_FLAGS:
            if generated.startswith(flag):
                return generated
    return None


def _secrets(manifest: Manifest, models: list[Model]) -> Iterator[Problem]:
    blocks = [("defaults", manifest.defaults.env or {})]
    blocks += [
        (field_path("models", name), entry.env or {}) for name, entry in manifest.models.items()
    ]
    for block, env in blocks:
        for name, value in env.items():
            if value is not None and SECRET_NAME.search(name):
                yield Problem(
                    field_path(block, "env", name),
                    "looks like a secret and would be written into docker-compose.yml; write "
                    f"`{name}: null` to pass it by name, and put the value in .env or the shell",
                )


def _local_models(models: list[Model]) -> Iterator[Problem]:
    for model in models:
        if model.local_path is not None and not (model.local_path / "config.json").is_file():
            yield Problem(
                model.path_of("model"),
                f"{model.local_path} holds no config.json: not a model directory",
            )
