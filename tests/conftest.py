"""Shared test helpers: where things are, and the tiny local models some manifests point at."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
TINY_MODELS = REPO / "models"


def make_tiny_models() -> Path:
    """The tiny random-weight models of tools/make_tiny_models.py (deterministic, a few MB)."""
    if not (TINY_MODELS / "tiny-llama-a" / "config.json").is_file():
        subprocess.run(
            [sys.executable, str(REPO / "tools" / "make_tiny_models.py"), str(TINY_MODELS)],
            check=True,
            capture_output=True,
        )
    return TINY_MODELS


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    return make_tiny_models()
