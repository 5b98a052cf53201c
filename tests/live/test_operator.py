"""`render.py status` against the live stack, and `render.py up` on small stacks of its own: one
that comes up, one whose model cannot start. Each `up` test removes what it started."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from arenastack.core.services import VLLM_PORT
from tests.conftest import REPO
from tests.live.conftest import LIVE, MANIFEST, Report, Stack
from tests.ports import free_port

pytestmark = pytest.mark.live

MODELS = ["tiny-a", "tiny-b", "tiny-q"]
UP_TIMEOUT_S = 600


def render_py(*args: str, timeout: float = UP_TIMEOUT_S + 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "render.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_status_json_lists_every_model_with_numbers_from_metrics(stack: Stack) -> None:
    for service in MODELS:
        client = OpenAI(base_url=stack.url(service, VLLM_PORT) + "/v1", api_key="none")
        client.chat.completions.create(
            model=service, messages=[{"role": "user", "content": "Hi!"}], max_tokens=8
        )
    result = render_py("status", str(stack.manifest), "-o", str(stack.compose_file), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["project"] == stack.project
    assert status["metric_names"] == "current"
    models = {m["service"]: m for m in status["models"]}
    assert set(models) == set(MODELS)
    for service, model in models.items():
        assert (model["state"], model["health"]) == ("running", "healthy"), model
        assert model["metrics_error"] is None, model
        assert model["uptime_s"] > 0
        assert model["cpu_kvcache_space_gib"] == 1
        assert 0 <= model["kv_cache_usage"] <= 1
        assert model["requests_running"] is not None and model["requests_waiting"] is not None
        assert model["generation_tokens_total"] > 0, service
        assert model["ttft_p50_s"] > 0 and model["ttft_p95_s"] >= model["ttft_p50_s"]
        assert model["generation_tokens_per_s"] is not None, service
        assert model["tokens_per_s_source"] == "prometheus"
    assert status["services"]["controller"]["health"] == "healthy"
    assert status["services"]["prometheus"]["health"] == "healthy"
    stack.report.figures["status_json_models"] = sorted(models)


# --- `up` on stacks of its own -------------------------------------------------------------


@pytest.fixture
def own_stack(live_manifest: Path) -> Iterator[tuple[str, Path, Path]]:
    """A project name, manifest and compose file for a one-model stack of its own, with the
    live run's images (`live_manifest` builds them, or skips where Docker is missing) but not
    its stack; everything it starts is removed afterwards."""
    project = f"arenastack-up-{secrets.token_hex(4)}"
    manifest = LIVE / f".run-{project}.yaml"
    compose_file = LIVE / f".run-{project}.compose.yml"
    yield project, manifest, compose_file
    from python_on_whales import DockerClient

    if compose_file.exists():
        DockerClient(compose_files=[compose_file], compose_project_name=project).compose.down(
            volumes=True, remove_orphans=True
        )
    manifest.unlink(missing_ok=True)
    compose_file.unlink(missing_ok=True)
    left = DockerClient().container.list(
        all=True, filters=[("label", f"com.docker.compose.project={project}")]
    )
    assert left == []


def small_manifest(project: str, **model: object) -> dict[str, object]:
    webui_port = free_port()
    model_port = free_port(taken={webui_port})
    return {
        "device": "cpu",
        "project": project,
        # The live stack's images, tags included: `up` must find them built, not build its own
        # (a FastChat image built inside `up` took longer than the test waits).
        "images": yaml.safe_load(MANIFEST.read_text())["images"],
        "webui": {"port": webui_port, "mode": "single"},
        "defaults": {"cpu_kvcache_space": 1, "max_model_len": 1024},
        "models": {"solo": {"model": "../../models/tiny-llama-a", "port": model_port, **model}},
    }


def test_up_reaches_all_healthy(report: Report, own_stack: tuple[str, Path, Path]) -> None:
    project, manifest, compose_file = own_stack
    manifest.write_text(yaml.safe_dump(small_manifest(project)), encoding="utf-8")
    started = time.monotonic()
    result = render_py("up", str(manifest), "-o", str(compose_file))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    # Piped, the view prints one line per change: solo went through starting to healthy.
    solo = [line for line in lines if "solo" in line]
    assert any("starting" in line or "loading" in line for line in solo), result.stdout
    assert any("healthy" in line for line in solo), result.stdout
    assert "all healthy after" in lines[-1] and "http://127.0.0.1:" in lines[-1], lines[-1]
    report.figures["up_one_model_all_healthy_s"] = round(took, 1)


def test_up_fails_naming_the_model_and_its_log(
    report: Report, own_stack: tuple[str, Path, Path]
) -> None:
    project, manifest, compose_file = own_stack
    broken = small_manifest(project, extra_args=["--no-such-flag"])
    manifest.write_text(yaml.safe_dump(broken), encoding="utf-8")
    started = time.monotonic()
    result = render_py("up", str(manifest), "-o", str(compose_file))
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "failed: solo" in out, out
    assert "log lines of solo" in out
    assert "unrecognized arguments: --no-such-flag" in out
    assert "likely cause:" in out and "models.solo.extra_args" in out
    report.figures["up_failure_reported_s"] = round(took, 1)
