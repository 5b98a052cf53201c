"""The manifest model: defaults, resolution and the shipped manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from arenastack.core.problems import ManifestError
from arenastack.manifest import Manifest, Model, parse_manifest, resolve_models
from tests.conftest import REPO

SHIPPED = sorted((REPO / "compose").glob("**/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_manifests_are_valid(path: Path) -> None:
    manifest = parse_manifest(yaml.safe_load(path.read_text()))
    assert manifest.models


def test_seed_manifest_reproduces_the_write_up() -> None:
    manifest = parse_manifest(yaml.safe_load((REPO / "compose/models.yaml").read_text()))
    models = {m.service: m for m in resolve_models(manifest, REPO / "compose")}
    assert list(models) == ["llama3", "gemma", "decilm", "phi3", "stablelm"]
    fractions = {name: m.gpu_memory_utilization for name, m in models.items()}
    assert fractions == {
        "llama3": 0.25, "gemma": 0.27, "decilm": 0.23, "phi3": 0.17, "stablelm": 0.07
    }  # fmt: skip
    assert all(m.gpus == (0,) and m.enforce_eager and m.trust_remote_code for m in models.values())
    assert models["phi3"].max_model_len == 18000
    assert models["stablelm"].dtype == "float16"
    assert [m.kv_cache_dtype for m in models.values()] == ["auto", "fp8", "fp8", "fp8", "fp8"]
    assert models["llama3"].display_name == "Llama 3 8B 8K"
    assert models["phi3"].display_name == "Phi 3 18K"


def resolve(data: dict[str, object]) -> dict[str, Model]:
    manifest = Manifest.model_validate(data)
    return {m.service: m for m in resolve_models(manifest, Path("/manifests"))}


def test_defaults_apply_and_models_override_them() -> None:
    models = resolve(
        {
            "defaults": {"gpu": 1, "enforce_eager": True, "env": {"A": "1", "B": "2"},
                         "extra_args": ["--seed", "1"]},
            "models": {
                "x": {"model": "org/x", "gpu_memory_utilization": 0.3},
                "y": {"model": "org/y", "gpu_memory_utilization": 0.3, "gpu": 0,
                      "enforce_eager": False, "env": {"B": "3"}, "extra_args": ["--x"]},
            },
        }
    )  # fmt: skip
    x, y = models["x"], models["y"]
    assert (x.gpus, x.enforce_eager, x.env, x.extra_args) == (
        (1,), True, {"A": "1", "B": "2"}, ("--seed", "1")
    )  # fmt: skip
    assert (y.gpus, y.enforce_eager, y.env, y.extra_args) == (
        (0,), False, {"A": "1", "B": "3"}, ("--seed", "1", "--x")
    )  # fmt: skip
    assert x.path_of("gpu") == "defaults.gpu"
    assert y.path_of("gpu") == "models.y.gpu"


def test_names_default_to_hub_id_or_service() -> None:
    models = resolve(
        {
            "models": {
                "hub": {"model": "org/model", "gpu_memory_utilization": 0.3},
                "local": {"model": "./models/tiny", "gpu_memory_utilization": 0.3},
            }
        }
    )
    assert models["hub"].served_model_name == "org/model"
    assert models["hub"].display_name == "hub"
    assert models["local"].served_model_name == "local"
    assert models["local"].local_path == Path("/manifests/models/tiny")


def test_disabled_models_are_left_out() -> None:
    models = resolve(
        {
            "models": {
                "on": {"model": "org/a", "gpu_memory_utilization": 0.3},
                "off": {"model": "org/b", "gpu_memory_utilization": 0.3, "enabled": False},
            }
        }
    )
    assert list(models) == ["on"]


def test_cpu_models_default_to_bfloat16() -> None:
    manifest = Manifest.model_validate({"device": "cpu", "models": {"m": {"model": "org/m"}}})
    (model,) = resolve_models(manifest, Path("."))
    assert model.dtype == "bfloat16"
    assert model.shm_size == "2g"


def test_gpus_shorthand_and_list_are_equivalent() -> None:
    short = Manifest.model_validate({"gpus": "2x80@8.0", "models": {"m": {"model": "o/m"}}})
    full = Manifest.model_validate(
        {
            "gpus": [{"memory_gib": 80, "compute_capability": "8.0"}] * 2,
            "models": {"m": {"model": "o/m"}},
        }
    )
    assert short.gpus == full.gpus


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest({"models": {"a": {"model": "o/a", "dtype": "x", "port": 0, "typo": 1}}})
    paths = sorted(problem.path for problem in raised.value.problems)
    assert paths == ["models.a.dtype", "models.a.port", "models.a.typo"]


UNKNOWN_KEY = "x: unknown key (misspelled? the manifest reference lists the keys)"


@pytest.mark.parametrize(
    ("models", "models_problem"),
    [
        ({}, "models: Dictionary should have at least 1 item after validation, not 0"),
        (3, "models: Input should be a valid dictionary"),
    ],
    ids=["empty", "not-a-mapping"],
)
def test_unusable_models_do_not_hide_the_other_problems(
    models: object, models_problem: str
) -> None:
    """Nothing checkable is left without models, but the same round's other errors are true."""
    with pytest.raises(ManifestError) as raised:
        parse_manifest({"models": models, "x": 1})
    problems = [f"{problem.path}: {problem.message}" for problem in raised.value.problems]
    assert problems == [models_problem, UNKNOWN_KEY]


def test_missing_models_do_not_hide_the_other_problems() -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest({"x": 1})
    problems = [f"{problem.path}: {problem.message}" for problem in raised.value.problems]
    assert problems == ["models: Field required", UNKNOWN_KEY]
