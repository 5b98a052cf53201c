"""The exported JSON Schema is current and accepts what the model accepts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from arenastack import cli
from arenastack.core.paths import MANIFEST_SCHEMA, README
from arenastack.manifest.reference import schema_text
from tests.conftest import FIXTURES, REPO


def test_schema_file_and_readme_reference_are_current() -> None:
    assert MANIFEST_SCHEMA.read_text() == schema_text(), "run `python render.py schema`"
    assert cli.main(["schema", "--check"]) == 0
    assert "| `gpu_memory_utilization` |" in README.read_text()


def test_stale_schema_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "manifest.schema.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(cli, "MANIFEST_SCHEMA", stale)
    assert cli.main(["schema", "--check"]) == 1


MANIFESTS = sorted((REPO / "compose").glob("**/*.yaml")) + sorted(
    (FIXTURES / "manifests").glob("*.yaml")
)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_schema_accepts_good_manifests(path: Path) -> None:
    schema = json.loads(MANIFEST_SCHEMA.read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


@pytest.mark.parametrize(
    "name", ["unknown-model-key", "fraction-one", "service-name-uppercase", "dtype-unknown"]
)
def test_schema_rejects_what_the_model_rejects(name: str) -> None:
    schema = json.loads(MANIFEST_SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load((FIXTURES / "bad" / f"{name}.yaml").read_text()), schema)
