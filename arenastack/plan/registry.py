"""vLLM's own model registry, asked before anything starts.

A model whose config.json names an architecture the image's vLLM lacks otherwise fails only once
its server starts (after the models before it in its chain, and with a 10,000-character error in
the container's log). The renderer knows each model's config.json (local folder, Hugging Face
cache or catalog) and the vLLM version the image runs, so it asks that version's registry first.

The registries are data: `compose/vllm-registry/<version>.json`, each the architecture → module
tables of `vllm/model_executor/models/registry.py` of that version's PyPI sdist, written by
`tools/vllm_registry.py`. A version between two recorded ones gets their common answer; where the
two disagree, or a ref lies past the newest record, it is a warning, not an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from arenastack.core.paths import VLLM_REGISTRY
from arenastack.core.problems import Problem
from arenastack.manifest import Manifest, Model
from arenastack.plan import modelinfo
from arenastack.plan.dialect import NEWEST, Dialect, Version, parse_version
from arenastack.plan.modelinfo import ModelInfo

# Modules that serve an architecture name only for configs of a particular shape. From v0.8.3
# `DeciLMForCausalLM` names vLLM's Nemotron-NAS implementation (nemotron_nas.py reads
# `config.block_configs` per layer); DeciLM-7B's own config has no such key, and its own
# implementation (decilm.py, variable grouped-query attention) went in v0.8.3.
MODULE_NEEDS_CONFIG_KEY = {"nemotron_nas": "block_configs"}


@dataclass(frozen=True)
class Record:
    version: Version
    architectures: dict[str, str]  # architecture → vLLM module
    previously_supported: dict[str, str]  # architecture → last version that served it

    @property
    def label(self) -> str:
        return "v{}.{}.{}".format(*self.version)

    def module_for(self, info: ModelInfo) -> tuple[str | None, str]:
        """The module that serves the model, or None and why not."""
        reasons = []
        for architecture in info.architectures:
            module = self.architectures.get(architecture)
            needed = MODULE_NEEDS_CONFIG_KEY.get(module or "")
            if module is not None and (needed is None or needed in info.config_keys):
                return module, ""
            if module is not None:
                reasons.append(
                    f"{architecture} is served by vLLM {self.label}'s `{module}` module, which "
                    f"reads `{needed}` from config.json; this config has none"
                )
            elif architecture in self.previously_supported:
                last = self.previously_supported[architecture]
                reasons.append(f"{architecture} was removed after vLLM v{last}")
            else:
                reasons.append(f"vLLM {self.label} has no {architecture}")
        return None, "; ".join(reasons)


@cache
def records() -> tuple[Record, ...]:
    found = []
    for path in VLLM_REGISTRY.glob("*.json"):
        data = json.loads(path.read_text())
        found.append(
            Record(
                parse_version(data["version"]),
                data["architectures"],
                data["previously_supported"],
            )
        )
    return tuple(sorted(found, key=lambda r: r.version))


def _neighbours(version: Version) -> tuple[Record | None, Record | None]:
    """The records at or just below and just above `version` (the same record twice when it is
    recorded exactly)."""
    below = [r for r in records() if r.version <= version]
    above = [r for r in records() if r.version >= version]
    return (below[-1] if below else None), (above[0] if above else None)


def _last_serving(info: ModelInfo, before: Version) -> Record | None:
    serving = [r for r in records() if r.version < before and r.module_for(info)[0]]
    return serving[-1] if serving else None


def check(
    manifest: Manifest, models: list[Model], dialect: Dialect, manifest_dir: Path
) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings): a model whose architecture the image's vLLM lacks is a problem; one
    whose config.json is not at hand, or whose version is not recorded closely enough, a
    warning."""
    host_cache = None
    if manifest.hf_cache.host_path:
        host_cache = (manifest_dir / Path(manifest.hf_cache.host_path).expanduser()).resolve()
    problems: list[Problem] = []
    warnings: list[Problem] = []
    below, above = _neighbours(dialect.version)
    version = dialect.label
    if below is None:
        oldest = records()[0].label
        reason = f"no model registry recorded for vLLM {version} (the oldest recorded is {oldest})"
        return [], [Problem("images.vllm.vllm_ref", f"models not checked: {reason}")]
    for model in models:
        if _transformers_backend(model):
            continue  # vLLM's Transformers backend serves what its own registry lacks
        path = model.path_of("model")
        info = modelinfo.lookup(model.model, model.local_path, host_cache, online=False)
        if info is None or not info.architectures:
            warnings.append(
                Problem(
                    path,
                    f"not checked against vLLM {version}'s model registry: no config.json with "
                    "`architectures` at hand (local folder, Hugging Face cache, "
                    "compose/model-info/); a model vLLM lacks fails only when its server starts",
                )
            )
            continue
        served, reason = below.module_for(info)
        if above is not None:
            served_above, reason_above = above.module_for(info)
            if (served is None) != (served_above is None):
                warnings.append(
                    Problem(
                        path,
                        f"cannot tell whether vLLM {version} serves {'/'.join(info.architectures)}"
                        f": {below.label} {'does' if served else 'does not'}, {above.label} "
                        f"{'does' if served_above else 'does not'} (tools/vllm_registry.py "
                        f"{version.lstrip('v')} records it)",
                    )
                )
                continue
            reason = reason or reason_above
        if served is not None:
            continue
        if above is None and dialect.version != below.version:
            ref = "a branch or commit" if dialect.version == NEWEST else version
            warnings.append(
                Problem(
                    path,
                    f"{reason} ({below.label} is the newest recorded; the image's vLLM is {ref} "
                    "and may differ)",
                )
            )
            continue
        last = _last_serving(info, dialect.version)
        hint = f"; the last recorded vLLM that serves it is {last.label}" if last else ""
        problems.append(
            Problem(
                path,
                f"{model.model} cannot run on the image's vLLM {version}: {reason}{hint}. "
                "Choose another model or images.vllm.vllm_ref",
            )
        )
    return problems, warnings


def _transformers_backend(model: Model) -> bool:
    arguments = list(model.extra_args)
    for position, argument in enumerate(arguments):
        if argument == "--model-impl=transformers":
            return True
        if argument == "--model-impl" and arguments[position + 1 : position + 2] == [
            "transformers"
        ]:
            return True
    return False
