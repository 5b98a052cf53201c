"""The command line end to end: render.py as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arenastack import cli
from arenastack.render import compose
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


def test_three_independent_faults_print_three_lines(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "models:\n"
        "  a: {model: org/a, gpu_memory_utilization: 0.6, dtype: bfloat17}\n"
        "  b: {model: org/b, gpu_memory_utilization: 0.5, port: 7860}\n"
    )
    result = run(str(manifest), "--gpus", "1x80@8.0", "-o", str(tmp_path / "out.yml"))
    assert result.returncode == 2
    assert [line.split(":")[1] for line in result.stderr.splitlines()] == [
        " models.a.dtype",
        " models.b.gpu_memory_utilization",
        " models.b.port",
    ], result.stderr


def test_a_renderer_bug_is_not_blamed_on_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "docker-compose.yml"
    output.write_text("# the previous render\n")
    # A renderer that forgets an image's type: the Compose schema wants a string.
    monkeypatch.setattr(compose, "build_document", lambda stack: {"services": {"x": {"image": 5}}})
    status = cli.main(["--gpus", "1x80@8.0", "-o", str(output)])
    err = capsys.readouterr().err
    assert status == cli.RENDERER_BUG != cli.USAGE_ERROR
    assert "bug in arenastack, not in your manifest" in err
    assert "services/x/image: 5 is not of type 'string'" in err
    assert "error: models." not in err
    assert output.read_text() == "# the previous render\n"


def test_rendering_is_the_same_in_two_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    """Set and dict order must not leak into the file: two interpreters with different string
    hashing render byte-identical files."""
    outputs = []
    for seed in ("1", "2"):
        output = tmp_path / f"seed-{seed}.yml"
        result = subprocess.run(
            [sys.executable, str(REPO / "render.py"), "--gpus", "1x80@8.0", "-o", str(output)],
            cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
