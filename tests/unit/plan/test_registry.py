"""vLLM's model registry, asked at render time (arenastack/plan/registry.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arenastack.core.paths import REPO, VLLM_REGISTRY
from arenastack.core.problems import ManifestError
from arenastack.plan import registry
from arenastack.plan.dialect import parse_version
from arenastack.render.pipeline import prepare

SEED = REPO / "compose" / "models.yaml"


def seed_with_ref(tmp_path: Path, ref: str) -> Path:
    path = tmp_path / "seed.yaml"
    text = SEED.read_text() + f"\nimages:\n  vllm:\n    vllm_ref: {ref}\n"
    path.write_text(text)
    return path


def errors(path: Path, gpus: str = "1x80@8.0") -> list[str]:
    with pytest.raises(ManifestError) as raised:
        prepare(path, gpus)
    return [str(problem) for problem in raised.value.problems]


def test_seed_passes_on_its_pinned_ref() -> None:
    prepared = prepare(SEED, "1x80@8.0")
    assert not [w for w in prepared.warnings if w.path.endswith(".model")]


@pytest.mark.parametrize("ref", ["v0.8.3", "v0.8.4", "v0.24.0", "v0.33.0"])
def test_seed_past_v0_8_2_fails_on_decilm(tmp_path: Path, ref: str) -> None:
    found = errors(seed_with_ref(tmp_path, ref))
    assert len(found) == 1, found
    assert found[0].startswith("models.decilm.model: ")
    assert "DeciLMForCausalLM" in found[0] and f"vLLM {ref}" in found[0]
    assert "the last recorded vLLM that serves it is v0.8.2" in found[0]


def write_model(folder: Path, architectures: list[str]) -> Path:
    folder.mkdir(parents=True)
    config = {
        "architectures": architectures,
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 512,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def local_manifest(tmp_path: Path, architecture: str, ref: str, extra: str = "") -> Path:
    write_model(tmp_path / "m", [architecture])
    path = tmp_path / "manifest.yaml"
    path.write_text(
        f"images: {{vllm: {{vllm_ref: {ref}}}}}\n"
        "models:\n"
        f"  mine: {{model: ./m, gpu: 0, gpu_memory_utilization: 0.5{extra}}}\n"
        "  other: {model: ./m, served_model_name: other, gpu: 0, gpu_memory_utilization: 0.3"
        f"{extra}}}\n"
    )
    return path


def test_an_architecture_vllm_lacks_names_field_architecture_and_version(tmp_path: Path) -> None:
    found = errors(local_manifest(tmp_path, "NoSuchForCausalLM", "v0.24.0"))
    assert found[0].startswith("models.mine.model: ")
    assert "vLLM v0.24.0 has no NoSuchForCausalLM" in found[0]


def test_a_removed_architecture_says_when_it_went(tmp_path: Path) -> None:
    found = errors(local_manifest(tmp_path, "StableLMEpochForCausalLM", "v0.33.0"))
    assert "StableLMEpochForCausalLM was removed after vLLM v0.28.0" in found[0]
    assert "the last recorded vLLM that serves it is v0.28.0" in found[0]


def test_the_transformers_backend_is_not_second_guessed(tmp_path: Path) -> None:
    extra = ", extra_args: [--model-impl, transformers]"
    prepare(local_manifest(tmp_path, "NoSuchForCausalLM", "v0.24.0", extra), "1x80@8.0")


def test_unknown_config_offline_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(
        "planner: {online: false}\n"
        "models:\n"
        "  a: {model: nobody/unknown-model, gpu: 0, gpu_memory_utilization: 0.4}\n"
        "  b: {model: meta-llama/Meta-Llama-3-8B-Instruct, gpu: 0, gpu_memory_utilization: 0.4}\n"
    )
    warnings = [str(w) for w in prepare(path, "1x80@8.0").warnings]
    assert [w for w in warnings if w.startswith("models.a.model: not checked against vLLM")]
    assert not [w for w in warnings if w.startswith("models.b.model")]


def test_a_ref_between_records_that_disagree_is_a_warning(tmp_path: Path) -> None:
    # Qwen3 arrived between 0.8.2 and 0.8.5; 0.8.4 is not recorded.
    records = {r.label for r in registry.records()}
    assert {"v0.8.3", "v0.8.5"} <= records and "v0.8.4" not in records
    assert not any("Qwen3ForCausalLM" in r.architectures for r in registry.records()[:7])
    path = local_manifest(tmp_path, "Qwen3ForCausalLM", "v0.8.4")
    warnings = [str(w) for w in prepare(path, "1x80@8.0").warnings]
    assert any("cannot tell whether vLLM v0.8.4 serves Qwen3ForCausalLM" in w for w in warnings)


def test_records_are_sorted_and_named_by_their_version() -> None:
    for path in VLLM_REGISTRY.glob("*.json"):
        data = json.loads(path.read_text())
        assert path.stem == data["version"] and data["generated_by"] == "tools/vllm_registry.py"
        assert data["source"].startswith("PyPI sdist vllm-")
    versions = [r.version for r in registry.records()]
    assert versions == sorted(versions) and parse_version("0.33.0") in versions
