"""The command line end to end: render.py as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "render.py"), *args], cwd=cwd, capture_output=True, text=True
    )


def test_seed_renders_with_the_documented_warning(tmp_path: Path) -> None:
    output = tmp_path / "docker-compose.yml"
    result = run("--gpus", "1x80@8.0", "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert "warning: models.stablelm.gpu_memory_utilization: GPU 0 is nearly full" in result.stderr
    services = yaml.safe_load(output.read_text())["services"]
    assert {"llama3", "gemma", "decilm", "phi3", "stablelm", "controller", "webui"} <= set(services)


def test_default_output_is_docker_compose_yml_in_the_working_folder(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("models:\n  a: {model: org/a, gpu_memory_utilization: 0.5}\n")
    result = run(str(manifest), "--gpus", "1x24@8.9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "docker-compose.yml").is_file()


def test_a_failed_render_leaves_the_previous_file_byte_identical(tmp_path: Path) -> None:
    output = tmp_path / "docker-compose.yml"
    assert run("--gpus", "1x80@8.0", "-o", str(output)).returncode == 0
    before = output.read_bytes()
    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  a: {model: org/a, gpu_memory_utilization: 1.5}\n")
    result = run(str(broken), "--gpus", "1x80@8.0", "-o", str(output))
    assert result.returncode == 2
    assert result.stderr.startswith("error: models.a.gpu_memory_utilization: 1.5 is outside")
    assert output.read_bytes() == before


def test_without_gpus_the_message_says_how_to_declare_them(tmp_path: Path) -> None:
    result = run("-o", str(tmp_path / "x.yml"))
    assert result.returncode == 2
    assert "--gpus 2x80@8.0" in result.stderr
    assert not (tmp_path / "x.yml").exists()


def test_plan_table_and_json() -> None:
    table = run("plan", "--gpus", "1x80@8.0")
    assert table.returncode == 0, table.stderr
    assert "GPU 0" in table.stdout and "phi3" in table.stdout and "fractions needed" in table.stdout
    machine = run("plan", "--gpus", "1x80@8.0", "--json")
    document = json.loads(machine.stdout)
    assert next(m["service"] for m in document["models"]) == "llama3"


def test_plan_sequences_must_be_positive() -> None:
    result = run("plan", "--gpus", "1x80@8.0", "--sequences", "0")
    assert result.returncode == 2
    assert "error: --sequences: must be 1 or more" in result.stderr
