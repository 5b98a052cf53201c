"""The residency service's config: a JSON file read once at start into frozen dataclasses.

    {"awake_per_gpu": 2, "sleep_level": 1, "wake_timeout_s": 60,
     "models": {"tiny-a": {"url": "http://tiny-a:8000", "gpu": "0",
                           "names": ["tiny-a-served", "Tiny A"], "wave": 0}}}

A model's first name is the one its vLLM server serves (`--served-model-name`); the others are
aliases (FastChat's display name, say) that the proxy rewrites to it before forwarding. Every
fault is reported at once, one line per field (`models.tiny-a.gpu: ...`), as the manifest's are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arenastack.core.problems import Problem, field_path


@dataclass(frozen=True)
class ModelConfig:
    key: str
    url: str
    gpu: str
    names: tuple[str, ...]
    # Its start-up wave on its GPU (render/residency.py): while a model of a later wave is still
    # starting, the models of earlier waves are put to sleep as soon as they are up and idle.
    wave: int = 0

    @property
    def served_name(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Config:
    models: tuple[ModelConfig, ...]
    awake_per_gpu: int
    # Level 1 moves the weights to host memory; level 2 discards them, and vLLM's /wake_up
    # does not bring them back (its docs: level 2 is for loading other weights after waking),
    # so a level-2 model needs its weights reloaded on waking, which this service does not do.
    sleep_level: int = 1
    # How long a request may wait for its model: for a busy GPU to free a slot, then the wake.
    wake_timeout_s: float = 60.0
    # After a failed wake the model answers 503 at once for this long, then is tried again.
    failed_backoff_s: float = 30.0
    # The proxied request gets a connect timeout and, by default, none for reading: a long
    # generation streams for as long as it takes.
    connect_timeout_s: float = 10.0
    read_timeout_s: float | None = None
    # Start-up: how often each server's /health is asked until it answers 200.
    health_poll_s: float = 1.0

    def routes(self) -> dict[str, ModelConfig]:
        """Every name a request may use (served names and aliases) → its model."""
        return {name: model for model in self.models for name in model.names}


class ConfigError(Exception):
    """The config cannot be used; `problems` says why, field by field."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join([f"{source}:", *(f"  {p}" for p in problems)]))


def load(path: Path) -> Config:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(str(path), [Problem("", f"cannot read it: {error}")]) from error
    except json.JSONDecodeError as error:
        raise ConfigError(str(path), [Problem("", f"not JSON: {error}")]) from error
    return parse(data, source=str(path))


def parse(data: Any, source: str = "residency config") -> Config:
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", "must be a JSON object")])

    known = {"models", *(f for f in Config.__dataclass_fields__ if f != "models")}
    for key in sorted(set(data) - known):
        problems.append(Problem(key, f"unknown field (known: {', '.join(sorted(known))})"))

    def number(name: str, default: float, valid: Callable[[float], bool], rule: str) -> float:
        value = data.get(name, default)
        # bool is an int to Python, never a number here.
        real = isinstance(value, int | float) and not isinstance(value, bool)
        if real and math.isfinite(value) and valid(float(value)):
            return float(value)
        problems.append(Problem(name, f"must be {rule}, not {json.dumps(value)}"))
        return default

    if "awake_per_gpu" not in data:
        problems.append(Problem("awake_per_gpu", "required: how many models may be awake per GPU"))
    awake = number("awake_per_gpu", 1, lambda v: v == int(v) and v >= 1, "a whole number ≥ 1")
    level = number("sleep_level", 1, lambda v: v in (1, 2), "1 or 2 (vLLM's sleep levels)")
    positive = "a number of seconds > 0"
    wake_timeout = number("wake_timeout_s", 60.0, lambda v: v > 0, positive)
    backoff = number("failed_backoff_s", 30.0, lambda v: v >= 0, "a number of seconds ≥ 0")
    connect = number("connect_timeout_s", 10.0, lambda v: v > 0, positive)
    poll = number("health_poll_s", 1.0, lambda v: v > 0, positive)
    read = None
    if data.get("read_timeout_s") is not None:
        read = number("read_timeout_s", 0.0, lambda v: v > 0, f"null (no timeout) or {positive}")

    models = _models(data.get("models"), problems)
    if problems:
        raise ConfigError(source, problems)
    return Config(
        models=models,
        awake_per_gpu=int(awake),
        sleep_level=int(level),
        wake_timeout_s=wake_timeout,
        failed_backoff_s=backoff,
        connect_timeout_s=connect,
        read_timeout_s=read,
        health_poll_s=poll,
    )


def _models(data: Any, problems: list[Problem]) -> tuple[ModelConfig, ...]:
    if not isinstance(data, dict) or not data:
        problems.append(Problem("models", "required: an object {name: {url, gpu, names}}"))
        return ()
    models = []
    owner: dict[str, str] = {}  # name → the model that claimed it first
    for key, entry in data.items():
        path = field_path("models", key)

        def problem(field: str, message: str, path: str = path) -> None:
            problems.append(Problem(f"{path}.{field}", message))

        if not isinstance(entry, dict):
            problems.append(Problem(path, "must be an object with url, gpu and names"))
            continue
        for unknown in sorted(set(entry) - {"url", "gpu", "names", "wave"}):
            problem(unknown, "unknown field (known: gpu, names, url, wave)")
        url, gpu, names = entry.get("url"), entry.get("gpu"), entry.get("names")
        wave = entry.get("wave", 0)
        if not (isinstance(wave, int) and not isinstance(wave, bool) and wave >= 0):
            problem("wave", f"must be a whole number ≥ 0, not {json.dumps(wave)}")
            wave = 0
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            problem("url", f"must be an http(s) URL, not {json.dumps(url)}")
        if not (isinstance(gpu, str) and gpu):
            problem("gpu", f'must be a string such as "0", not {json.dumps(gpu)}')
        if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
            problem("names", "must be a list of names, the served name first")
            continue
        for name in names:
            if owner.setdefault(name, key) != key:
                problem("names", f"{json.dumps(name)} is already a name of {owner[name]}")
        if isinstance(url, str) and isinstance(gpu, str):
            names_once = tuple(dict.fromkeys(names))
            models.append(ModelConfig(key, url.rstrip("/"), gpu, names_once, wave))
    return tuple(models)
