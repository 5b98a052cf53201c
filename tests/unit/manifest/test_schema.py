"""The exported JSON Schema and the manifest reference in docs/manifest.md are current, and the
schema accepts what the model accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from arenastack import cli
from arenastack.core.paths import MANIFEST_REFERENCE, MANIFEST_SCHEMA
from arenastack.manifest import Manifest
from arenastack.manifest.reference import reference_markdown, schema_text
from tests.conftest import FIXTURES, REPO


def test_schema_file_and_manifest_reference_are_current() -> None:
    assert MANIFEST_SCHEMA.read_text() == schema_text(), "run `python render.py schema`"
    assert cli.main(["schema", "--check"]) == 0
    assert MANIFEST_REFERENCE == REPO / "docs" / "manifest.md"
    assert "| `gpu_memory_utilization` |" in MANIFEST_REFERENCE.read_text()


def models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and not get_args(annotation):
        if issubclass(annotation, BaseModel):
            yield annotation
        return
    for argument in get_args(annotation):  # Optional, unions, lists, dict values, Annotated
        yield from models_in(argument)


def reachable_blocks(model: type[BaseModel], path: str = "") -> Iterator[tuple[str, set[str]]]:
    """The dotted path and field names of every block model under `model`."""
    for name, info in model.model_fields.items():
        here = f"{path}.{name}" if path else name
        for nested in models_in(info.annotation):
            yield here, set(nested.model_fields)
            yield from reachable_blocks(nested, here)


def test_reference_has_a_table_for_every_block() -> None:
    """A table whose title names the block's path lists all its fields (`defaults` shares the
    table of `models.<service>`, whose entries add fields of their own)."""
    tables: dict[str, set[str]] = {}
    for table in reference_markdown().split("\n\n**")[1:]:
        title, _, rows = table.partition("**")
        tables[title] = {row.split("`")[1] for row in rows.splitlines() if row.startswith("| `")}
    blocks = list(reachable_blocks(Manifest))
    assert {"monitoring", "monitoring.prometheus", "models", "gpus"} <= {p for p, _ in blocks}
    missing = [
        path
        for path, fields in blocks
        if not any(f"`{path}" in title and fields <= rows for title, rows in tables.items())
    ]
    assert missing == []


def test_stale_schema_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "manifest.schema.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(cli, "MANIFEST_SCHEMA", stale)
    assert cli.main(["schema", "--check"]) == 1


def test_stale_reference_is_reported_and_rewritten_between_its_markers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`render.py schema` owns only what lies between the markers of docs/manifest.md."""
    page = tmp_path / "manifest.md"
    before, after = "# Manifest\n\nProse kept.\n\n", "\nMore prose kept.\n"
    page.write_text(f"{before}{cli.REFERENCE_START}| stale |\n{cli.REFERENCE_END}{after}")
    monkeypatch.setattr(cli, "MANIFEST_REFERENCE", page)
    schema = tmp_path / "manifest.schema.json"  # so that nothing in the checkout is written
    schema.write_text(schema_text())
    monkeypatch.setattr(cli, "MANIFEST_SCHEMA", schema)
    assert cli.main(["schema", "--check"]) == 1
    assert f"{page} is stale" in capsys.readouterr().err
    assert "| stale |" in page.read_text(), "--check writes nothing"
    assert cli.main(["schema"]) == 0
    text = page.read_text()
    assert text.startswith(before + cli.REFERENCE_START)
    assert text.endswith(cli.REFERENCE_END + after)
    assert "| stale |" not in text and "| `gpu_memory_utilization` |" in text
    assert cli.main(["schema", "--check"]) == 0


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
