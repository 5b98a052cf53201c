"""On a machine with an NVIDIA GPU and driver: `pytest -m gpu tests/gpu`.

CI machines have no GPU, so these are not part of the default run (see pyproject's addopts); they
were run on a borrowed H100 (docs/tests.md, "GPU").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from arenastack.plan.inventory import cuda_arch_list, detect_gpus
from arenastack.plan.memory import CUDA_CONTEXT_GIB
from arenastack.render.pipeline import compose_text, prepare
from tests.conftest import REPO

pytestmark = pytest.mark.gpu


def nvidia_smi() -> list[tuple[str, float, str]]:
    output = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,compute_cap",
         "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split(", ") for line in output.strip().splitlines()]
    return [(name, float(mib) / 1024, capability) for name, mib, capability in rows]


def test_nvml_inventory_agrees_with_nvidia_smi() -> None:
    detected = detect_gpus()
    expected = nvidia_smi()
    assert len(detected) == len(expected) > 0
    for gpu, (name, memory_gib, capability) in zip(detected, expected, strict=True):
        assert gpu.name == name
        assert gpu.compute_capability == capability
        assert abs(gpu.memory_gib - memory_gib) < 0.01


def test_auto_inventory_compiles_for_this_host_only(tmp_path: Path) -> None:
    text = compose_text(prepare(REPO / "compose/models.yaml"), tmp_path / "docker-compose.yml")
    args = yaml.safe_load(text)["services"]["fetch-models"]["build"]["args"]
    capabilities = sorted({capability for _, _, capability in nvidia_smi()}, key=float)
    assert args["TORCH_CUDA_ARCH_LIST"] == " ".join(capabilities)
    assert args["TORCH_CUDA_ARCH_LIST"] == cuda_arch_list(detect_gpus())


def test_cuda_context_fits_the_planners_allowance() -> None:
    """What one process's CUDA context takes on the GPU, outside any vLLM fraction."""
    code = (
        "import torch, pynvml, json; pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0);"
        "before = pynvml.nvmlDeviceGetMemoryInfo(h).used; torch.zeros(1, device='cuda');"
        "torch.cuda.synchronize(); after = pynvml.nvmlDeviceGetMemoryInfo(h).used;"
        "print(json.dumps({'context_bytes': after - before}))"
    )
    python = os.environ.get("TORCH_PYTHON", "python3")  # an interpreter that has torch
    result = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if "No module named 'torch'" in result.stderr:
        pytest.skip(f"{python} has no torch to create a CUDA context with")
    assert result.returncode == 0, result.stderr
    context = json.loads(result.stdout)["context_bytes"]
    report = Path(os.environ.get("ARENASTACK_REPORT_DIR", REPO / "tests/artifacts"))
    report.mkdir(parents=True, exist_ok=True)
    (report / "cuda-context.json").write_text(
        json.dumps({"context_bytes": context, "gpu": nvidia_smi()[0][0]}) + "\n"
    )
    assert 0 < context <= CUDA_CONTEXT_GIB * 2**30
