"""Golden render cases: manifest, command-line arguments, expected compose file.

Regenerate the expected files after an intended change with

    python -m tests.regenerate_goldens

and review the diff: it is the change users will see in their compose files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arenastack.render.pipeline import compose_text, prepare
from tests.conftest import FIXTURES, REPO

GOLDEN = FIXTURES / "golden"


@dataclass(frozen=True)
class Case:
    name: str
    manifest: Path
    gpus: str | None
    # --host-memory (GiB), for manifests with residency: not this machine's.
    host_memory: float | None = None

    @property
    def expected(self) -> Path:
        return GOLDEN / f"{self.name}.yaml"


CASES = [
    Case("seed", REPO / "compose/models.yaml", "1x80@8.0"),
    Case("two-gpus", REPO / "compose/experiments/two-gpus.yaml", "2x80@8.0"),
    Case("tensor-parallel", REPO / "compose/experiments/tensor-parallel.yaml", "3x80@9.0"),
    Case("planned", REPO / "compose/experiments/planned.yaml", "2x48@8.6"),
    Case("current", REPO / "compose/experiments/current.yaml", "1x80@9.0"),
    Case("cpu", REPO / "compose/cpu.yaml", None),
    Case("current-vllm", FIXTURES / "manifests/current-vllm.yaml", "2x80@9.0"),
    Case("hostile", FIXTURES / "manifests/hostile.yaml", "1x80@9.0"),
    Case("wheel", FIXTURES / "manifests/wheel.yaml", "1x80@9.0"),
    Case("single-ui-host-cache", FIXTURES / "manifests/single-ui-host-cache.yaml", "1x24@8.9"),
    Case("gateway", FIXTURES / "manifests/gateway.yaml", None),
    Case("elastic", FIXTURES / "manifests/elastic.yaml", "1x139.8@9.0"),
    Case("residency", REPO / "tools/gpu/calibration/residency.yaml", "1x140.4@9.0", 128),
]

# The compose file is rendered as if written to the repository root, as `python render.py` does.
OUTPUT = REPO / "docker-compose.yml"


def render(case: Case) -> str:
    return compose_text(prepare(case.manifest, case.gpus, host_memory_gib=case.host_memory), OUTPUT)
