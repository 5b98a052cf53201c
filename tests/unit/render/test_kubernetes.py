"""The Kubernetes target: golden folders, strict validation against the Kubernetes schemas of the
oldest and newest versions kubernetes-validate bundles, `kubectl kustomize`, the same bad
manifests as the compose target plus the cluster's own, hostile strings, the atomic folder swap,
and the pods' wait script."""

from __future__ import annotations

import http.server
import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from arenastack import cli
from arenastack.manifest import load_manifest
from arenastack.render import arena_json as arena
from arenastack.render import endpoints, k8s_pod, kubernetes, stack
from arenastack.render.pipeline import compose_text, prepare
from tests.conftest import FIXTURES, REPO
from tests.k8s_cases import CASES, Case, render
from tests.unit.plan.test_checks import BAD, header

KUBECTL = Path(sys.executable).parent / "kubectl"
BAD_KUBERNETES = sorted((FIXTURES / "bad-kubernetes").glob("*.yaml"))
VERSIONS = kubernetes_validate.utils.all_versions()
OLDEST_AND_NEWEST = [VERSIONS[0], VERSIONS[-1]]


def parsed(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load(text) for name, text in files.items()}


def case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def resources(name: str) -> dict[str, dict[str, Any]]:
    return parsed(render(case(name)))


def container(deployment: dict[str, Any], name: str = "vllm") -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in spec["containers"] if c["name"] == name)
    return found


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def expanded(text: str) -> str:
    """What Kubernetes makes of a command or env string: `$$` → `$`, `$(VAR)` expanded (no
    variable is defined in these tests, so a reference stays as written)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# --- golden folders, strict schemas, kustomize -----------------------------------------------


@pytest.mark.parametrize("golden", CASES, ids=lambda c: c.name)
def test_render_matches_golden(golden: Case) -> None:
    expected = {p.name: p.read_text(encoding="utf-8") for p in golden.expected.glob("*.yaml")}
    assert parsed(render(golden)) == parsed(expected), (
        "regenerate with `python -m tests.regenerate_k8s_goldens`"
    )


def test_regenerate_check_passes_now_and_shows_stale_missing_and_left_over_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests import k8s_cases, regenerate_k8s_goldens

    assert regenerate_k8s_goldens.main(["--check"]) == 0
    seed = next(c for c in CASES if c.name == "seed-hami")
    stale = tmp_path / seed.name
    stale.mkdir()
    for path in seed.expected.glob("*.yaml"):
        (stale / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    service = (stale / "phi3-service.yaml").read_text(encoding="utf-8")
    (stale / "phi3-service.yaml").write_text(service.replace("port: 8000", "port: 8001"))
    (stale / "gemma-service.yaml").unlink()
    (stale / "left-over.yaml").write_text("kind: ConfigMap\n")
    before = {p.name: p.read_text() for p in stale.iterdir()}
    monkeypatch.setattr(k8s_cases, "GOLDEN", tmp_path)
    monkeypatch.setattr(regenerate_k8s_goldens, "CASES", [seed])

    assert regenerate_k8s_goldens.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-    port: 8001" in out and "+    port: 8000" in out, out
    assert "+++ seed-hami/gemma-service.yaml (rendered now)" in out, out
    assert "-kind: ConfigMap" in out, out
    assert {p.name: p.read_text() for p in stale.iterdir()} == before, "--check writes nothing"


def test_goldens_hold_no_path_of_this_machine() -> None:
    for path in (FIXTURES / "golden-kubernetes").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert str(REPO) not in text and "/home/" not in text, path


@pytest.mark.parametrize("version", OLDEST_AND_NEWEST)
@pytest.mark.parametrize("golden", CASES, ids=lambda c: c.name)
def test_every_resource_validates_strictly(golden: Case, version: str) -> None:
    documents = parsed(render(golden))
    kinds = set()
    for name, document in documents.items():
        if name == "kustomization.yaml":
            continue
        # Raises on any unknown field (strict) or wrong type; returns the schema version used.
        assert kubernetes_validate.validate(document, version, strict=True) == version[:4]
        kinds.add(document["kind"])
    assert kinds == {"Deployment", "Service", "Job", "ConfigMap", "PersistentVolumeClaim"}


def test_strict_validation_catches_an_unknown_field() -> None:
    deployment = resources("seed-hami")["phi3-deployment.yaml"]
    container(deployment)["gpuMemoryUtilization"] = "0.5"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def kustomize(files: dict[str, str], folder: Path) -> list[dict[str, Any]]:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.mark.parametrize("golden", CASES, ids=lambda c: c.name)
def test_kubectl_kustomize_builds_the_folder(golden: Case, tmp_path: Path) -> None:
    files = render(golden)
    built = kustomize(files, tmp_path / "out")
    assert len(built) == len(files) - 1, "every resource file is in the kustomization"
    loaded = load_manifest(golden.manifest).manifest
    assert loaded is not None
    namespace = loaded.kubernetes.namespace
    for document in built:
        assert document["metadata"].get("namespace") == namespace


# --- what the resources say ------------------------------------------------------------------


def test_hami_slices_and_the_fraction_vllm_sees_inside_them() -> None:
    documents = resources("seed-hami")
    llama3 = container(documents["llama3-deployment.yaml"])
    # 0.25 of 80 GiB in MiB, as a plain integer (HAMi reads "20Gi" as 0).
    assert llama3["resources"]["limits"] == {"nvidia.com/gpu": 1, "nvidia.com/gpumem": 20480}
    # HAMi reports the slice as the GPU's total memory; the CUDA context (768 MiB) is charged to
    # it, so vLLM may take the rest of the slice: (20480 - 768) / 20480 = 0.9625, rounded down.
    assert flag(llama3["command"], "--gpu-memory-utilization") == "0.962"
    phi3 = container(documents["phi3-deployment.yaml"])
    assert phi3["resources"]["limits"]["nvidia.com/gpumem"] == 13926  # 0.17 × 81920
    assert flag(phi3["command"], "--gpu-memory-utilization") == "0.944"
    total = sum(
        container(d)["resources"]["limits"]["nvidia.com/gpumem"]
        for name, d in documents.items()
        if name.endswith("-deployment.yaml") and d["metadata"]["labels"].get(
            "app.kubernetes.io/component") == "model"
    )  # fmt: skip
    assert total <= 80 * 1024, "the slices on one GPU fit the card"


def test_model_commands_are_the_compose_commands_but_for_the_fraction() -> None:
    documents = resources("seed-hami")
    prepared = prepare(REPO / "compose/models.yaml", "1x80@8.0")
    for model in prepared.plan.models:
        expected = stack.vllm_command(model, prepared.dialect, cuda=True)
        command = container(documents[f"{model.service}-deployment.yaml"])["command"]
        at = expected.index("--gpu-memory-utilization") + 1
        assert command[:at] + command[at + 1 :] == expected[:at] + expected[at + 1 :]


def test_whole_gpus_tensor_parallel_registry_and_node_selection() -> None:
    documents = resources("whole-gpus")
    big = documents["llama3-70b-deployment.yaml"]
    vllm = container(big)
    assert vllm["resources"]["limits"] == {"nvidia.com/gpu": 2}, "both GPUs in one pod: one node"
    assert flag(vllm["command"], "--tensor-parallel-size") == "2"
    assert flag(vllm["command"], "--gpu-memory-utilization") == "0.92", "the card's own fraction"
    assert vllm["image"] == "registry.example.com:5000/arena/arenastack/vllm:v0.8.2-sm90"
    assert container(documents["webui-deployment.yaml"], "webui")["image"] == (
        "registry.example.com:5000/arena/arenastack/fastchat:0.2.36"
    )
    assert big["spec"]["template"]["spec"]["nodeSelector"] == {
        "kubernetes.io/hostname": "gpu-node-1",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    assert big["spec"]["strategy"] == {"type": "Recreate"}
    pvc = documents["hf-cache-pvc.yaml"]["spec"]
    assert pvc["accessModes"] == ["ReadWriteMany"] and pvc["storageClassName"] == "nfs-client"


def test_start_order_follows_compose_start_chains() -> None:
    for name, manifest, gpus in [
        ("seed-hami", "compose/models.yaml", "1x80@8.0"),
        ("tensor-parallel-hami", "compose/experiments/tensor-parallel.yaml", "3x80@9.0"),
    ]:
        documents = resources(name)
        models = prepare(REPO / manifest, gpus).plan.models
        for model, after in zip(models, stack.start_chains(models), strict=True):
            deployment = documents[f"{model.service}-deployment.yaml"]
            (wait,) = deployment["spec"]["template"]["spec"]["initContainers"]
            healthy = [
                wait["command"][i + 1]
                for i, word in enumerate(wait["command"])
                if word == "--healthy"
            ]
            assert healthy == [f"http://{s}:8000/health" for s in after]
            assert flag(wait["command"], "--fetched") == model.model
    documents = resources("tensor-parallel-hami")
    # The 70B and the first model on GPU 2 start at once; gemma after llama3-8b.
    assert "--healthy" not in container_init(documents["llama3-70b-deployment.yaml"])
    assert "--healthy" not in container_init(documents["llama3-8b-deployment.yaml"])
    assert flag(container_init(documents["gemma-deployment.yaml"]), "--healthy") == (
        "http://llama3-8b:8000/health"
    )


def container_init(deployment: dict[str, Any]) -> list[str]:
    command: list[str] = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"]
    return command


def test_probes_shm_offline_and_the_secret_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    files = render(case("whole-gpus"))
    assert not any("hf_secret_value_123" in text for text in files.values())
    documents = parsed(files)
    vllm = container(documents["llama3-8b-deployment.yaml"])
    startup = vllm["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/health"
    assert vllm["livenessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in vllm["env"]}
    assert env["HF_HUB_OFFLINE"] == {"name": "HF_HUB_OFFLINE", "value": "1"}
    for name in ("HF_TOKEN", "MY_API_KEY"):
        assert env[name]["valueFrom"] == {
            "secretKeyRef": {"name": "hf-secrets", "key": name, "optional": True}
        }
    volumes = documents["llama3-8b-deployment.yaml"]["spec"]["template"]["spec"]["volumes"]
    shm = next(v for v in volumes if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert {"name": "shm", "mountPath": "/dev/shm"} in vllm["volumeMounts"]
    for document in documents.values():
        assert document["kind"] != "Secret", "the user creates the Secret"
        if document["kind"] == "Service":
            assert document["spec"]["type"] == "ClusterIP"


def test_endpoints_point_at_the_model_services() -> None:
    documents = resources("seed-hami")
    data = documents["api-endpoints-configmap.yaml"]["data"]["api_endpoints.json"]
    prepared = prepare(REPO / "compose/models.yaml", "1x80@8.0")
    assert yaml.safe_load(data) == yaml.safe_load(endpoints.render(prepared.plan.models))
    services = {d["metadata"]["name"] for d in documents.values() if d["kind"] == "Service"}
    for entry in json.loads(data).values():
        host = entry["api_base"].removeprefix("http://").split(":")[0]
        assert host in services


def test_the_leaderboard_rates_beside_the_ui_on_its_volume(tmp_path: Path) -> None:
    """As on Compose: the leaderboard service reads the experiment's arena.json and the votes the
    UI writes. A sidecar shares the UI's ReadWriteOnce claim; no probe, so it never takes the UI
    out of its Service."""
    cpu = REPO / "compose/cpu.yaml"
    documents = resources("cpu")
    on_compose = yaml.safe_load(compose_text(prepare(cpu), REPO / "docker-compose.yml"))
    arena_json = documents["arena-configmap.yaml"]["data"]["arena.json"]
    assert arena_json == on_compose["configs"]["arena"]["content"]
    webui = documents["webui-deployment.yaml"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in webui["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    board = container(webui, "leaderboard")
    assert board["command"] == on_compose["services"]["leaderboard"]["command"]
    assert "readinessProbe" not in board and "livenessProbe" not in board
    for name in ("webui", "leaderboard"):
        mounts = {m["mountPath"]: m["name"] for m in container(webui, name)["volumeMounts"]}
        assert claims[mounts[stack.LOGDIR]] == "arena-logs", name
        assert mounts[arena.ARENA_FILE] == "arena", name
    assert container(webui, "webui")["env"] == [
        {"name": k, "value": v} for k, v in on_compose["services"]["webui"]["environment"].items()
    ]

    data = yaml.safe_load(cpu.read_text(encoding="utf-8"))
    for off, settings in (("leaderboard-off", {"leaderboard": {"enabled": False}}),
                          ("single-ui", {"webui": {"mode": "single"}})):  # fmt: skip
        path = tmp_path / f"{off}.yaml"
        path.write_text(yaml.safe_dump({**data, **settings}), encoding="utf-8")
        prepared, sharing = kubernetes.prepare(path, None, None)
        pod = parsed(kubernetes.build(prepared, sharing, path.name))["webui-deployment.yaml"]
        names = [c["name"] for c in pod["spec"]["template"]["spec"]["containers"]]
        assert names == ["webui"], off


def test_hostile_strings_reach_the_resources_verbatim(tmp_path: Path) -> None:
    """Every hostile string but U+0085 (NEL), which kustomize drops (refused, see below),
    arrives verbatim in the files and in what `kubectl kustomize` builds from them."""
    text = (FIXTURES / "manifests/hostile.yaml").read_text(encoding="utf-8")
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(text.replace(" \\N nel", ""), encoding="utf-8")
    manifest = yaml.safe_load(hostile.read_text(encoding="utf-8"))
    a, b = manifest["models"]["a"], manifest["models"]["b"]
    assert "\u2028" in a["system_prompt"] and "{{" in a["system_prompt"], "still hostile"
    prepared, sharing = kubernetes.prepare(hostile, "1x80@9.0", "hami")
    files = kubernetes.build(prepared, sharing, "hostile.yaml")
    written = [d for name, d in parsed(files).items() if name != "kustomization.yaml"]
    for documents in (written, kustomize(files, tmp_path / "built")):
        by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}
        vllm = container(by_name[("Deployment", "a")])
        command = [expanded(word) for word in vllm["command"]]
        assert command[-len(a["extra_args"]) :] == a["extra_args"]
        assert flag(command, "--served-model-name") == a["served_model_name"]
        env = {e["name"]: expanded(e["value"]) for e in vllm["env"] if "value" in e}
        for name, value in a["env"].items():
            assert env[name] == value
        data = by_name[("ConfigMap", "api-endpoints")]["data"]["api_endpoints.json"]
        registered = json.loads(data)
        assert registered[a["display_name"]]["system_prompt"] == a["system_prompt"]
        assert registered[b["display_name"]]["model_name"] == b["served_model_name"]
        assert len(documents) == len(by_name) == len(files) - 1, "no string added a resource"


def test_strings_kustomize_cannot_carry_are_refused_at_their_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = FIXTURES / "manifests/hostile.yaml"
    status = cli.main([str(path), "--target", "kubernetes", "--gpus", "1x80@9.0",
                      "--gpu-sharing", "hami", "-o", str(tmp_path / "k")])  # fmt: skip
    errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("error")]
    assert status == 2
    fields = [e.removeprefix("error: ").split(": ")[0] for e in errors]
    assert fields == [
        "models.a.extra_args",
        "models.a.env.HOSTILE_UNICODE",
        "models.a.system_prompt",
        "models.b.served_model_name",
    ]
    assert all("contains U+0085, which kubectl kustomize cannot carry" in e for e in errors)


# --- the same errors as the compose target, and the cluster's own ----------------------------

PREVIOUS = {"kustomization.yaml": f"# {kubernetes.MARKER} from 'x'\nresources: []\n"}


def previous_render(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    for name, text in PREVIOUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("path", BAD + BAD_KUBERNETES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_bad_manifest_fails_the_same_way_and_keeps_the_folder(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "kubernetes"
    before = previous_render(output)
    args = header(path, "args")
    extra = shlex.split(args[0]) if args else ["--gpus", "1x80@8.0"]

    status = cli.main([str(path), "--target", "kubernetes", "-o", str(output), *extra])

    errors = capsys.readouterr().err.splitlines()
    assert status == 2
    assert all(line.startswith(("error: ", "warning: ")) for line in errors), errors
    for expected in header(path, "expect"):
        assert any(expected in line for line in errors), f"{expected!r} not in {errors}"
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert list(tmp_path.iterdir()) == [output], "no temporary folder is left behind"


def test_there_are_kubernetes_only_bad_manifests() -> None:
    assert len(BAD_KUBERNETES) >= 10
    assert all(header(path, "expect") for path in BAD_KUBERNETES)


def test_the_seed_with_whole_gpus_is_refused_saying_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status = cli.main(
        ["--target", "kubernetes", "--gpu-sharing", "whole", "--gpus", "1x80@8.0",
         "-o", str(tmp_path / "k")]
    )  # fmt: skip
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert status == 2
    # Every model after the first on GPU 0, each at the field to change (the seed's defaults).
    assert len(errors) == 4
    for line, model in zip(errors, ("gemma", "decilm", "phi3", "stablelm"), strict=True):
        assert line.startswith(f"error: defaults.gpu: {model} is on GPU 0, the GPU of llama3: ")
    assert "kubernetes.gpu_sharing: hami" in errors[0]
    assert not (tmp_path / "k").exists()


def test_gpu_sharing_needs_the_kubernetes_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--gpu-sharing", "hami", "--gpus", "1x80@8.0"]) == 2
    assert "error: --gpu-sharing: only applies with --target kubernetes" in capsys.readouterr().err


# --- the folder swap -------------------------------------------------------------------------


def run_render(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "render.py"), "--target", "kubernetes", *args],
        cwd=cwd, capture_output=True, text=True,
    )  # fmt: skip


def test_render_replaces_the_folder_whole_and_a_failed_one_leaves_it(tmp_path: Path) -> None:
    output = tmp_path / "k8s"
    first = run_render("compose/experiments/tensor-parallel.yaml", "--gpus", "3x80@9.0",
                       "--gpu-sharing", "hami", "-o", str(output))  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "images the cluster pulls: arenastack/vllm:v0.8.2-sm90" in first.stdout
    assert (output / "llama3-70b-deployment.yaml").is_file()
    # A render of another manifest drops the files of models it no longer has.
    second = run_render("--gpus", "1x80@8.0", "--gpu-sharing", "hami", "-o", str(output))
    assert second.returncode == 0, second.stderr
    assert not (output / "llama3-70b-deployment.yaml").exists()
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  a_b: {model: org/a, gpu: 3, gpu_memory_utilization: 0.5}\n")
    third = run_render(str(broken), "--gpus", "1x80@8.0", "-o", str(output))
    assert third.returncode == 2
    # The cluster's checks report with the others, all at once.
    assert "error: models.a_b.gpu: GPU 3 does not exist" in third.stderr
    assert "error: models.a_b: is not a valid Kubernetes Service name" in third.stderr
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml", "k8s"]


def test_a_folder_not_written_by_the_renderer_is_never_replaced(tmp_path: Path) -> None:
    output = tmp_path / "mine"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    result = run_render("--gpus", "1x80@8.0", "--gpu-sharing", "hami", "-o", str(output))
    assert result.returncode == 2
    assert "error: -o: " in result.stderr and "was not written by render.py" in result.stderr
    assert [p.name for p in output.iterdir()] == ["notes.txt"]


def test_default_folder_is_kubernetes_in_the_working_folder(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kubernetes: {registry: r.example.com}\nmodels:\n"
                        "  a: {model: org/a, gpu_memory_utilization: 0.5}\n")  # fmt: skip
    result = run_render(str(manifest), "--gpus", "1x24@8.9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kubernetes.registry" not in result.stderr
    assert (tmp_path / "kubernetes" / "kustomization.yaml").is_file()


# --- the pods' wait script -------------------------------------------------------------------


@pytest.fixture
def health_server() -> Iterator[str]:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_wait_returns_once_the_model_is_marked_and_the_previous_server_healthy(
    health_server: str, tmp_path: Path
) -> None:
    env = {"HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    script = [sys.executable, str(Path(k8s_pod.__file__)), "wait"]
    arguments = ["--fetched", "org/model-a", "--healthy", f"{health_server}/health"]
    waiting = subprocess.Popen([*script, *arguments], env=env, stdout=subprocess.PIPE, text=True)
    assert waiting.stdout is not None
    assert "waiting for org/model-a" in waiting.stdout.readline(), "not fetched yet: it waits"
    assert waiting.poll() is None
    mark = tmp_path / "arenastack-fetched" / "models--org--model-a"
    mark.parent.mkdir()
    mark.write_text("fetched\n")
    assert waiting.wait(timeout=30) == 0
    assert waiting.stdout.read().splitlines()[-1] == "ready"
    # A server that answers 503 keeps it waiting.
    stuck = subprocess.Popen(
        [*script, "--healthy", f"{health_server}/nothing"], env=env, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert stuck.stdout is not None
    assert "waiting for" in stuck.stdout.readline()
    assert stuck.poll() is None
    stuck.kill()
    stuck.wait()


WAITED_REPO = "org/model"


@pytest.fixture
def neighbour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A /health that answers 503 three times (marking WAITED_REPO fetched at the second), then
    200."""
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(k8s_pod, "POLL_SECONDS", 0.01)
    asked = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if len(asked) == 2:
                k8s_pod.mark(WAITED_REPO).parent.mkdir(parents=True, exist_ok=True)
                k8s_pod.mark(WAITED_REPO).write_text("fetched\n")
            self.send_response(200 if len(asked) > 3 else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    assert asked == ["/health"] * 4


def test_wait_returns_once_fetched_and_healthy_and_says_each_change_once(
    neighbour: str, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_pod.wait(["--fetched", WAITED_REPO, "--healthy", neighbour])
    assert k8s_pod.mark(WAITED_REPO).is_file()
    assert capsys.readouterr().out.splitlines() == [
        f"waiting for {WAITED_REPO}, {neighbour}",
        f"waiting for {neighbour}",
        "ready",
    ]


def test_gpu_uuids_pin_each_index_to_one_card_with_hami(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "kubernetes: {gpu_sharing: hami, gpu_uuids: [GPU-aaaa-0, GPU-bbbb-1]}\n"
        "models:\n"
        "  a: {model: org/a, gpu: 1, gpu_memory_utilization: 0.5}\n"
        "  b: {model: org/b, gpu: [0, 1], gpu_memory_utilization: 0.4}\n"
    )
    prepared, sharing = kubernetes.prepare(manifest, "2x24@8.9", None)
    documents = parsed(kubernetes.build(prepared, sharing, "m.yaml"))
    pod = documents["b-deployment.yaml"]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"nvidia.com/use-gpuuuid": "GPU-aaaa-0,GPU-bbbb-1"}
    assert container(documents["b-deployment.yaml"])["resources"]["limits"] == {
        "nvidia.com/gpu": 2,
        "nvidia.com/gpumem": 9830,  # 0.4 × 24576 MiB on each of its two GPUs
    }
    a = documents["a-deployment.yaml"]["spec"]["template"]
    assert a["metadata"]["annotations"] == {"nvidia.com/use-gpuuuid": "GPU-bbbb-1"}
    # b shares GPU 1 with a, so it starts after a is healthy.
    assert flag(container_init(documents["b-deployment.yaml"]), "--healthy") == (
        "http://a:8000/health"
    )
    for version in OLDEST_AND_NEWEST:
        kubernetes_validate.validate(documents["b-deployment.yaml"], version, strict=True)


def test_fetch_marks_a_model_only_once_it_is_in_the_cache(tmp_path: Path) -> None:
    """The Job's side, offline: a repository the cache holds is marked; one it lacks fails the
    Job (which Kubernetes retries) and is not marked, so no model pod starts on half a cache."""
    snapshot = tmp_path / "hub" / "models--org--model-a" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abcd")
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    script = [sys.executable, str(Path(k8s_pod.__file__)), "fetch"]
    done = subprocess.run([*script, "org/model-a"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "arenastack-fetched" / "models--org--model-a").is_file()
    (tmp_path / "arenastack-fetched" / "models--org--model-a").unlink()
    missing = [*script, "org/model-a", "org/model-b"]
    failed = subprocess.run(missing, env=env, capture_output=True, text=True)
    assert failed.returncode != 0
    assert (tmp_path / "arenastack-fetched" / "models--org--model-a").is_file(), "a is complete"
    assert not (tmp_path / "arenastack-fetched" / "models--org--model-b").exists()


def test_hami_warns_about_short_slices_instead_of_crowded_gpus() -> None:
    """Under HAMi each CUDA context sits inside its own slice: the Compose warning about contexts
    crowding GPU 0 gives way to one about the slice that the context leaves too small."""
    compose_warnings = prepare(REPO / "compose/models.yaml", "1x80@8.0").warnings
    assert any("GPU 0 is nearly full" in w.message for w in compose_warnings)
    prepared, _ = kubernetes.prepare(REPO / "compose/models.yaml", "1x80@8.0", "hami")
    lines = [str(w) for w in prepared.warnings]
    assert not any("nearly full" in line for line in lines)
    # stablelm: 0.07 × 81920 = 5734 MiB, less 768 MiB of context = 4.85 GiB; the plan needs 4.97.
    assert lines == [
        "models.stablelm.gpu_memory_utilization: its HAMi slice of 5734 MiB holds the CUDA "
        "context too (~768 MiB), leaving 4.85 GiB where the plan needs 4.97 GiB: raise the "
        "fraction if vLLM runs short of KV cache"
    ]
    whole, _ = kubernetes.prepare(FIXTURES / "manifests/k8s-whole-gpus.yaml", None, None)
    assert not any("HAMi" in str(w) for w in whole.warnings)
