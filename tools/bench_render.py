#!/usr/bin/env python3
"""How long a big render takes next to `docker compose config -q` on its output.

    python tools/bench_render.py [--models 64] [--gpus 8] [--repeat 5]

Writes a manifest of MODELS models spread over GPUS GPUs (hand-set fractions, hub ids, so no
model files are read), renders it with `python render.py` and checks the result with the real
Compose binary, each REPEAT times as whole processes, and prints the medians and their ratio.
A benchmark, not a test: the figures depend on the machine; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = Path(sys.executable).parent / "docker-compose"


def manifest(models: int, gpus: int) -> dict[str, object]:
    per_gpu = -(-models // gpus)
    fraction = round(0.9 / per_gpu, 3)
    return {
        "gpus": f"{gpus}x80@9.0",
        "planner": {"online": False},
        "models": {
            f"m{index:03d}": {
                "model": f"org/model-{index}",
                "gpu": index % gpus,
                "gpu_memory_utilization": fraction,
                "max_model_len": 4096,
            }
            for index in range(models)
        },
    }


def median_seconds(command: list[str], repeat: int, cwd: Path) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "big.yaml").write_text(yaml.safe_dump(manifest(args.models, args.gpus)))
        output = work / "docker-compose.yml"
        render = [sys.executable, str(REPO / "render.py"), "big.yaml", "-o", str(output)]
        config = [str(COMPOSE), "-f", str(output), "--project-directory", str(REPO), "config", "-q"]
        render_s = median_seconds(render, args.repeat, work)
        config_s = median_seconds(config, args.repeat, work)
    print(f"{args.models} models on {args.gpus} GPUs, median of {args.repeat} runs:")
    print(f"  python render.py            {render_s:.3f} s")
    print(f"  docker compose config -q    {config_s:.3f} s")
    print(f"  ratio render / config       {render_s / config_s:.2f}")


if __name__ == "__main__":
    main()
