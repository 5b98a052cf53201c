"""The resolved view: one `Model` per enabled entry, with `defaults` and the built-in defaults
applied, which every step after validation uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from arenastack.core.problems import field_path
from arenastack.manifest.document import Manifest
from arenastack.manifest.fields import LOCAL_PATH_PREFIXES
from arenastack.manifest.model_settings import ModelEntry


@dataclass(frozen=True)
class Model:
    """One enabled model with defaults applied; `gpus`/`gpu_memory_utilization` may be 'auto'
    until the planner fills them in."""

    service: str
    model: str
    local_path: Path | None
    gpus: tuple[int, ...] | Literal["auto"]
    gpu_memory_utilization: float | Literal["auto"]
    dtype: str
    kv_cache_dtype: str
    max_model_len: int | None
    enforce_eager: bool
    trust_remote_code: bool
    served_model_name: str
    display_name: str
    port: int | None
    extra_args: tuple[str, ...]
    env: dict[str, str | None]
    system_prompt: str | None
    shm_size: str
    cpu_kvcache_space: int
    weights_gib: float | None
    params_b: float | None
    # Which block each setting came from, for messages: `models.x.field` or `defaults.field`.
    origins: dict[str, str]
    # Settings that failed validation (their defaults stand in): nothing is derived from them.
    unchecked: frozenset[str] = frozenset()
    # Set by hand, or by the planner where it sizes the KV cache in bytes; None: the fraction's.
    kv_cache_memory_bytes: int | None = None

    @property
    def tensor_parallel_size(self) -> int:
        return 1 if self.gpus == "auto" else len(self.gpus)

    def path_of(self, setting: str) -> str:
        return self.origins.get(setting, field_path("models", self.service, setting))


BUILTIN_DEFAULTS: dict[str, Any] = {
    "gpu": 0,
    "gpu_memory_utilization": "auto",
    "kv_cache_memory_bytes": None,
    "dtype": "auto",
    "kv_cache_dtype": "auto",
    "max_model_len": None,
    "enforce_eager": False,
    "trust_remote_code": False,
    "extra_args": [],
    "env": {},
    "enabled": True,
    "system_prompt": None,
    "cpu_kvcache_space": 1,
    "weights_gib": None,
    "params_b": None,
}


def resolve_models(
    manifest: Manifest, manifest_dir: Path, pruned: tuple[str, ...] = ()
) -> list[Model]:
    """Apply `defaults`, then the built-in defaults; drop disabled models; keep manifest order.
    `pruned` lists the fields that failed validation (see `Loaded`)."""
    defaults = manifest.defaults.model_dump(exclude_unset=True)
    resolved = []
    for service, entry in manifest.models.items():
        own = entry.model_dump(exclude_unset=True)
        settings: dict[str, Any] = dict(BUILTIN_DEFAULTS)
        origins: dict[str, str] = {}
        for key, value in defaults.items():
            settings[key] = value
            origins[key] = field_path("defaults", key)
        for key, value in own.items():
            settings[key] = value
            origins.pop(key, None)
        settings["env"] = {**defaults.get("env", {}), **own.get("env", {})}
        settings["extra_args"] = [*defaults.get("extra_args", []), *own.get("extra_args", [])]
        if not settings["enabled"]:
            continue
        if manifest.device == "cpu":
            if "dtype" not in defaults and "dtype" not in own:
                settings["dtype"] = "bfloat16"  # fp16 is unstable on vLLM's CPU backend
            if "enforce_eager" not in defaults and "enforce_eager" not in own:
                # Compiled mode needs a C++ compiler in the image (torch inductor); ours has none.
                settings["enforce_eager"] = True
        local_path = _local_path(entry.model, manifest_dir)
        gpu = settings["gpu"]
        resolved.append(
            Model(
                service=service,
                model=entry.model,
                local_path=local_path,
                gpus=gpu if gpu == "auto" else ((gpu,) if isinstance(gpu, int) else tuple(gpu)),
                gpu_memory_utilization=settings["gpu_memory_utilization"],
                kv_cache_memory_bytes=settings["kv_cache_memory_bytes"],
                dtype=settings["dtype"],
                kv_cache_dtype=settings["kv_cache_dtype"],
                max_model_len=settings["max_model_len"],
                enforce_eager=settings["enforce_eager"],
                trust_remote_code=settings["trust_remote_code"],
                served_model_name=entry.served_model_name
                or (service if local_path else entry.model),
                display_name=entry.display_name or service,
                port=entry.port,
                extra_args=tuple(settings["extra_args"]),
                env=settings["env"],
                system_prompt=settings["system_prompt"],
                shm_size=settings.get("shm_size") or ("2g" if manifest.device == "cpu" else "8g"),
                cpu_kvcache_space=settings["cpu_kvcache_space"],
                weights_gib=settings["weights_gib"],
                params_b=settings["params_b"],
                origins=origins,
                unchecked=_unchecked(service, pruned),
            )
        )
    return resolved


def _unchecked(service: str, pruned: tuple[str, ...]) -> frozenset[str]:
    """The model's settings that failed validation. A misspelled key may be any of them (it
    is most often the GPU or the fraction), so an unknown key marks the model's placement and
    fraction unchecked too: nothing is planned on a guess."""
    unchecked = set()
    for block in (field_path("models", service), "defaults"):
        for path in pruned:
            setting = path.removeprefix(block + ".").split(".")[0]
            if not path.startswith(block + "."):
                continue
            if setting in ModelEntry.model_fields:
                unchecked.add(setting)
            else:
                unchecked |= {"gpu", "gpu_memory_utilization"}
    return frozenset(unchecked)


def _local_path(model: str, manifest_dir: Path) -> Path | None:
    if not model.startswith(LOCAL_PATH_PREFIXES):
        return None
    return (manifest_dir / Path(model).expanduser()).resolve()
