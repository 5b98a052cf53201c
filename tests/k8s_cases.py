"""Golden render cases of the Kubernetes target: manifest, --gpus, --gpu-sharing, expected folder.

Regenerate the expected folders after an intended change with

    python -m tests.regenerate_k8s_goldens

and review the diff: it is the change users will see in their kustomizations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arenastack.render import kubernetes
from tests.conftest import FIXTURES, REPO

GOLDEN = FIXTURES / "golden-kubernetes"


@dataclass(frozen=True)
class Case:
    name: str
    manifest: Path
    gpus: str | None
    sharing: str | None

    @property
    def expected(self) -> Path:
        return GOLDEN / self.name


CASES = [
    Case("seed-hami", REPO / "compose/models.yaml", "1x80@8.0", "hami"),
    Case(
        "tensor-parallel-hami",
        REPO / "compose/experiments/tensor-parallel.yaml",
        "3x80@9.0",
        "hami",
    ),
    Case("whole-gpus", FIXTURES / "manifests/k8s-whole-gpus.yaml", None, None),
    Case("cpu", REPO / "compose/cpu.yaml", None, None),
    Case("gateway-monitoring", FIXTURES / "manifests/k8s-gateway-monitoring.yaml", None, None),
    # Models sized in bytes start together: no init container waits for a neighbour.
    Case("current-hami", REPO / "compose/experiments/current.yaml", "1x80@9.0", "hami"),
]


def render(case: Case) -> dict[str, str]:
    """File name → text, as `render.py --target kubernetes` run from the repository root writes."""
    prepared, sharing = kubernetes.prepare(case.manifest, case.gpus, case.sharing)
    return kubernetes.build(prepared, sharing, case.manifest.relative_to(REPO).as_posix())
