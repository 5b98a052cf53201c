"""The path a manifest takes: load and validate → inventory GPUs → plan and check → compose.

Nothing here writes files; the command line decides where the result goes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arenastack.core.paths import IMAGES
from arenastack.core.problems import ManifestError, Problem
from arenastack.gateway import checks as gateway_checks
from arenastack.manifest import GpuSpec, Manifest, Model, load_manifest, resolve_models
from arenastack.plan import checks, inventory, planner, registry, residency
from arenastack.plan.dialect import Dialect, cpu_dialect, cuda_dialect
from arenastack.render import compose, templates
from arenastack.render.stack import Stack

CPU_REQUIREMENTS = IMAGES / "vllm-cpu" / "requirements-nodeps.txt"


@dataclass(frozen=True)
class Prepared:
    manifest: Manifest
    manifest_path: Path
    gpus: list[GpuSpec]
    dialect: Dialect
    plan: planner.Plan
    warnings: list[Problem]


def dialect_for(manifest: Manifest) -> Dialect:
    if manifest.device == "cpu":
        return cpu_dialect(CPU_REQUIREMENTS)
    return cuda_dialect(manifest.images.vllm.vllm_ref)


def prepare(
    manifest_path: Path,
    gpus_spec: str | None = None,
    sequences: int | None = None,
    detect: Callable[[], list[GpuSpec]] | None = None,
    explain: bool = False,
    extra_checks: Callable[[Manifest, list[Model], list[GpuSpec]], list[Problem]] | None = None,
    host_memory_gib: float | None = None,
) -> Prepared:
    """Everything up to the compose document; raises ManifestError listing every problem.

    A field that fails validation is left out and every later step still runs on the rest, so
    one run reports every problem; complaints that only echo a field already reported (its
    default stood in) are dropped."""
    loaded = load_manifest(manifest_path)
    if loaded.manifest is None:
        raise ManifestError(loaded.problems)
    manifest = loaded.manifest
    manifest_dir = manifest_path.resolve().parent
    models = resolve_models(manifest, manifest_dir, loaded.pruned)
    found = list(loaded.problems)
    derived: list[Problem] = []
    gpus: list[GpuSpec] | None
    try:
        gpus = inventory.gpus_for(manifest, gpus_spec, detect)
    except ManifestError as error:
        derived += error.problems
        gpus = None
    dialect = dialect_for(manifest)
    plan = planner.plan(manifest, models, gpus, manifest_dir, sequences, explain)
    derived += checks.problems(manifest, plan.models, None if gpus is None else len(gpus), dialect)
    derived += plan.problems
    derived += residency.problems(manifest, models, dialect)  # as written: "auto" unplaced
    if manifest.residency is not None and plan.entries:
        weights = {e.model.service: e.weights_bytes for e in plan.entries}
        host = residency.host_memory_gib(host_memory_gib)
        derived += residency.host_problems(manifest, weights, host)
    # The models' architectures against the image's vLLM model registry (plan/registry.py).
    unsupported, unchecked = registry.check(manifest, plan.models, dialect, manifest_dir)
    derived += unsupported
    derived += gateway_checks.problems(manifest, plan.models, manifest_dir)
    if extra_checks is not None:  # a target's own checks (Kubernetes), reported with the rest
        derived += extra_checks(manifest, plan.models, gpus or [])
    found += [p for p in derived if not loaded.derived_from_pruned(p)]
    if found:
        raise ManifestError(dict.fromkeys(found))
    assert gpus is not None
    memory = [gpu.memory_gib for gpu in gpus]
    warnings = checks.warnings(manifest, plan.models, memory) + plan.warnings + unchecked
    return Prepared(manifest, manifest_path, gpus, dialect, plan, warnings)


def compose_stack(prepared: Prepared, output_dir: Path, manifest_dir: Path) -> Stack:
    """What the compose module builds from, once the plan is settled; paths are written
    relative to `output_dir`."""
    manifest = prepared.manifest
    arch_list = manifest.images.vllm.cuda_arch_list
    if manifest.device == "cpu":
        arch_list = ""
    elif arch_list == "auto":
        arch_list = inventory.cuda_arch_list(prepared.gpus)
    return Stack(
        manifest=manifest,
        models=prepared.plan.models,
        dialect=prepared.dialect,
        cuda_arch_list=arch_list,
        output_dir=output_dir,
        manifest_dir=manifest_dir,
        together=prepared.plan.together,
    )


def compose_text(prepared: Prepared, output: Path) -> str:
    manifest_dir = prepared.manifest_path.resolve().parent
    stack = compose_stack(prepared, output.resolve().parent, manifest_dir)
    document = compose.build_document(stack)
    compose.validate(document)
    # Relative to the compose file, so the same render in another checkout is the same file.
    source = Path(os.path.relpath(prepared.manifest_path.resolve(), output.resolve().parent))
    header = (
        f"Generated by render.py from {source.as_posix()!r}; edit the manifest and render again.\n"
        f"vLLM flag dialect: {prepared.dialect.label}."
    )
    return templates.dump(document, header)
