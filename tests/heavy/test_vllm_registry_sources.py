"""The recorded registries (compose/vllm-registry/) are what tools/vllm_registry.py reads from
vLLM's sdists on PyPI (downloaded once, then cached)."""

from __future__ import annotations

import json

import pytest

from arenastack.core.paths import VLLM_REGISTRY
from tools import vllm_registry


@pytest.mark.parametrize("version", ["0.8.2", "0.8.3"])
def test_recorded_registry_is_what_the_generator_reads_from_the_sdist(version: str) -> None:
    """Downloads (then caches) the small sdists of 0.8.2/0.8.3 from PyPI."""
    recorded = json.loads((VLLM_REGISTRY / f"{version}.json").read_text())
    assert vllm_registry.registry(version) == recorded
