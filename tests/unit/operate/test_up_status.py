"""`up` and `status` without Docker: reading /metrics in both dialects, quantiles, likely
causes, and the live view's states."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from arenastack.manifest import Manifest, Model
from arenastack.operate import diagnosis, live_view, stack_state, stack_status
from arenastack.operate.stack_state import Container
from arenastack.plan import vllm_metrics
from arenastack.plan.vllm_metrics import metric_names
from tests.conftest import REPO


def exposition(kv: str, itl: str) -> str:
    return f"""# HELP {kv} KV-cache usage. 1 means 100 percent usage.
# TYPE {kv} gauge
{kv}{{engine="0",model_name="tiny-a"}} 0.25
vllm:num_requests_running{{engine="0",model_name="tiny-a"}} 2.0
vllm:num_requests_waiting{{engine="0",model_name="tiny-a"}} 1.0
vllm:generation_tokens_total{{engine="0",model_name="tiny-a"}} 640.0
vllm:num_preemptions_total{{engine="0",model_name="tiny-a"}} 0.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1",model_name="tiny-a"}} 2.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.5",model_name="tiny-a"}} 8.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="1.0",model_name="tiny-a"}} 10.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="tiny-a"}} 10.0
vllm:time_to_first_token_seconds_count{{engine="0",model_name="tiny-a"}} 10.0
{itl}_bucket{{engine="0",le="+Inf",model_name="tiny-a"}} 630.0
"""


@pytest.mark.parametrize("version", [(0, 8, 2), (0, 32, 0)], ids=["legacy", "current"])
def test_status_reads_metrics_of_either_dialect(version: tuple[int, int, int]) -> None:
    names = metric_names(version)
    samples = vllm_metrics.parse(exposition(names.kv_cache_usage, names.inter_token_latency))
    status = stack_status.ModelStatus(
        "tiny-a", "Tiny A", [0], None, 1, "running", "healthy", 0, 10.0, "http://x/metrics"
    )
    stack_status.read_metrics(status, samples, names)
    assert status.kv_cache_usage == 0.25
    assert (status.requests_running, status.requests_waiting) == (2.0, 1.0)
    assert status.generation_tokens_total == 640.0
    # Rank 5 of 10 falls in (0.1, 0.5] holding observations 3..8: 0.1 + 0.4 × 3/6.
    assert status.ttft_p50_s == pytest.approx(0.3)
    # Rank 9.5 falls in (0.5, 1.0] holding 9..10: 0.5 + 0.5 × 1.5/2.
    assert status.ttft_p95_s == pytest.approx(0.875)
    other = metric_names((0, 32, 0) if version < (0, 9, 2) else (0, 8, 2))
    stack_status.read_metrics(status, samples, other)
    assert status.kv_cache_usage is None, "a name of the other dialect must not match"


def test_parse_keeps_escaped_label_values_and_skips_junk() -> None:
    samples = vllm_metrics.parse(
        'm{a="x\\"y",b="1"} 3\n# comment\nnot a sample line\nm2 NaN\nm3{} 1.5e3 1700000000\n'
    )
    assert samples[0].labels == (("a", 'x"y'), ("b", "1"))
    assert math.isnan(samples[1].value)
    assert samples[2].value == 1500.0


def test_quantile_edges() -> None:
    assert vllm_metrics.quantile(0.5, {}) is None
    assert vllm_metrics.quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None
    # Everything beyond the last finite bound: Prometheus answers that bound.
    assert vllm_metrics.quantile(0.5, {1.0: 0.0, math.inf: 4.0}) == 1.0


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            "ValueError: Free memory on device (10.5/79.1 GiB) on startup is less than desired "
            "GPU memory utilization (0.45, 35.6 GiB).",
            "models.llama.gpu_memory_utilization",
        ),
        ("ValueError: No available memory for the cache blocks. Try increasing", "raise"),
        ("huggingface_hub.errors.GatedRepoError: 401 Client Error.", "gated"),
        ("huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error.", "models.llama.model"),
        ("api_server.py: error: unrecognized arguments: --no-such-flag", "extra_args"),
    ],
)
def test_likely_cause_names_known_failures(line: str, words: str) -> None:
    cause = diagnosis.likely_cause("llama", ["INFO starting", line, "Traceback done"], None)
    assert cause is not None and words in cause


def container(service: str, **state: object) -> Container:
    base = Container(
        service=service,
        id=f"id-{service}",
        status="running",
        health="starting",
        restarts=0,
        exit_code=0,
        oom_killed=False,
        started_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ip_address="172.18.0.5",
        pid=100,
    )
    return replace(base, **state)  # type: ignore[arg-type]


def test_oom_kill_is_a_known_cause() -> None:
    killed = container("llama", status="exited", exit_code=137, oom_killed=True)
    cause = diagnosis.likely_cause("llama", ["no clue here"], killed)
    assert cause is not None and "out-of-memory" in cause
    assert diagnosis.likely_cause("llama", ["no clue here"], container("llama")) is None


def model(service: str, gpu: int) -> Model:
    return Model(
        service=service, model=f"org/{service}", local_path=None, gpus=(gpu,),
        gpu_memory_utilization=0.3, dtype="auto", kv_cache_dtype="auto", max_model_len=None,
        enforce_eager=False, trust_remote_code=False, served_model_name=service,
        display_name=service.upper(), port=None, extra_args=(), env={}, system_prompt=None,
        shm_size="8g", cpu_kvcache_space=1, weights_gib=None, params_b=None, origins={},
    )  # fmt: skip


def test_watch_walks_models_through_their_states() -> None:
    models = [model("a", 0), model("q", 1), model("b", 0)]
    watch = live_view.Watch(models, ["controller", "webui"], max_restarts=2, started=0.0)
    # Start order per GPU: a then b on GPU 0, q on GPU 1.
    assert list(watch.lines)[:4] == ["fetch-models", "a", "b", "q"]
    looks: dict[str, Container] = {"fetch-models": container("fetch-models")}
    watch.update(looks, 1.0)
    assert watch.lines["fetch-models"].state == "downloading"
    assert watch.lines["b"].state == "waiting for its turn"
    assert watch.lines["b"].detail == "after a"
    looks = {
        "fetch-models": container("fetch-models", status="exited", exit_code=0),
        "a": container("a"),
        "b": container("b", status="created"),
        "q": container("q"),
    }
    watch.loading.add("q")
    watch.update(looks, 5.0)
    assert [watch.lines[s].state for s in ("fetch-models", "a", "b", "q")] == [
        "done", "starting", "waiting for its turn", "loading",
    ]  # fmt: skip
    looks["a"] = container("a", health="healthy")
    watch.update(looks, 30.0)
    assert watch.lines["a"].state == "healthy" and watch.lines["a"].took == 30.0
    assert not watch.all_healthy
    looks |= {s: container(s, health="healthy") for s in ("b", "q", "controller", "webui")}
    watch.update(looks, 70.0)
    assert watch.all_healthy
    assert watch.failure(looks, lambda c: []) is None


def test_watch_with_residency_shows_the_waves_and_who_sleeps() -> None:
    """Waves of two on GPU 0 (a | b, c): b and c wait for a, which is healthy once asleep."""
    models = [model("a", 0), model("b", 0), model("c", 0)]
    watch = live_view.Watch(models, [], max_restarts=2, started=0.0, awake_per_gpu=2)
    assert watch.after == {"a": [], "b": ["a"], "c": ["a"]}
    looks = {
        "fetch-models": container("fetch-models", status="exited", exit_code=0),
        "a": container("a", health="healthy"),
        "b": container("b", health="healthy"),
        "c": container("c", health="healthy"),
    }
    watch.update(looks, 40.0)
    shown = {s: (watch.lines[s].state, watch.lines[s].detail) for s in "abc"}
    assert shown == {
        "a": ("healthy", "asleep, woken on demand"),
        "b": ("healthy", "awake"),
        "c": ("healthy", "awake"),
    }


def test_watch_fails_at_a_known_cause_at_once_and_otherwise_after_restarts() -> None:
    models = [model("a", 0)]
    watch = live_view.Watch(models, [], max_restarts=2, started=0.0)
    looping = {"a": container("a", status="restarting", restarts=1, exit_code=1)}
    assert watch.failure(looping, lambda c: ["some error"]) is None
    watch.update(looping, 3.0)
    assert watch.lines["a"].state == "restarting"
    failure = watch.failure(looping, lambda c: ["error: unrecognized arguments: --x"])
    assert failure is not None and failure.service == "a"
    assert failure.cause is not None and "extra_args" in failure.cause
    assert failure.log == ["error: unrecognized arguments: --x"]
    twice = {"a": container("a", status="restarting", restarts=2, exit_code=1)}
    failure = watch.failure(twice, lambda c: ["some error"])
    assert failure is not None and failure.cause is None
    fetch = {"fetch-models": container("fetch-models", status="exited", exit_code=1)}
    failure = watch.failure(fetch, lambda c: ["RepositoryNotFoundError: 404 Client Error"])
    assert failure is not None and failure.service == "fetch-models"


def test_a_container_that_turns_unhealthy_as_compose_gives_up_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compose exits the moment solo turns unhealthy; that can fall between the view's look
    (solo still starting) and its poll of Compose. The failure names solo, not Compose."""
    watch = live_view.Watch([model("solo", 0)], [], max_restarts=2, started=0.0)
    looks = iter(
        [
            {"solo": container("solo")},
            {"solo": container("solo", health="unhealthy")},
            # The look after the report, which finds nothing else left to come up.
            {"solo": container("solo", status="exited")},
        ]
    )
    monkeypatch.setattr(stack_state, "look", lambda docker, project: next(looks))
    monkeypatch.setattr(stack_state, "logs", lambda docker, c, n: ["error: unrecognized arguments"])

    class ComposeGaveUp:
        def poll(self) -> int:
            return 1

    class Silent:
        def show(self, watch: object, clock: float) -> None:
            pass

    (failure,) = live_view._watch(
        None,  # type: ignore[arg-type]
        "p",
        watch,
        ComposeGaveUp(),  # type: ignore[arg-type]
        None,
        60.0,
        Silent(),  # type: ignore[arg-type]
        lambda failure: None,
        now=lambda: 0.0,  # the watch's own clock: no time has passed, so no timeout
    )
    assert failure.service == "solo"
    assert failure.reason == "its healthcheck failed"


def test_a_stack_not_healthy_in_time_names_who_is_still_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The timeout is measured on the watch's own clock: ten looks ten seconds apart, a 25 s
    limit, and the failure comes at the look after 25 s, naming the services not yet healthy."""
    watch = live_view.Watch([model("a", 0), model("b", 1)], [], max_restarts=2, started=100.0)
    healthy_a = {"a": container("a", health="healthy"), "b": container("b")}
    monkeypatch.setattr(stack_state, "look", lambda docker, project: healthy_a)
    monkeypatch.setattr(stack_state, "logs", lambda docker, c, n: [])
    ticks = iter(100.0 + 10 * n for n in range(10))
    looked_at: list[float] = []

    class StillStarting:
        def poll(self) -> None:
            return None

    class Recording:
        def show(self, watch: object, clock: float) -> None:
            looked_at.append(clock)

    (failure,) = live_view._watch(
        None,  # type: ignore[arg-type]
        "p",
        watch,
        StillStarting(),  # type: ignore[arg-type]
        None,
        25.0,
        Recording(),  # type: ignore[arg-type]
        lambda failure: None,
        now=lambda: next(ticks),
        sleep=lambda seconds: None,
    )
    assert (failure.service, failure.reason) == ("fetch-models, b", "not healthy after 25 s")
    assert looked_at == [100.0, 110.0, 120.0, 130.0]


def test_inspect_record_and_project_name() -> None:
    raw = {
        "Id": "abc",
        "RestartCount": 3,
        "State": {
            "Status": "running",
            "ExitCode": 0,
            "OOMKilled": False,
            "Pid": 42,
            "StartedAt": "2026-11-25T15:00:00.123456789Z",
            "Health": {"Status": "healthy"},
        },
        "Config": {"Labels": {"com.docker.compose.service": "tiny-a"}},
        "NetworkSettings": {"Networks": {"x_default": {"IPAddress": "172.18.0.3"}}},
    }
    record = stack_state.from_inspect(raw)
    assert (record.service, record.health, record.restarts) == ("tiny-a", "healthy", 3)
    assert record.started_at == datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=timezone.utc)
    later = datetime(2026, 11, 25, 15, 1, 0, 123456, tzinfo=timezone.utc)
    assert record.uptime_s(later) == 60.0
    assert record.ip_address == "172.18.0.3"


def test_a_process_is_matched_to_its_container_by_cgroup() -> None:
    import os
    from pathlib import Path

    cgroup = Path(f"/proc/{os.getpid()}/cgroup").read_text()
    marker = max((line.rsplit("/", 1)[-1] for line in cgroup.splitlines()), key=len)
    if not marker:
        pytest.skip(f"this process sits in root cgroups only ({cgroup!r}): nothing to match")
    mine = {"other": container("other", id="0123456789ab"), "mine": container("mine", id=marker)}
    assert stack_status.container_of(os.getpid(), mine) == "mine"
    assert stack_status.container_of(os.getpid(), {"other": mine["other"]}) is None
    assert stack_status.container_of(2**22 + 7, mine) is None  # no such process


def test_up_renders_then_hands_the_stack_to_the_live_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arenastack import cli

    seen: dict[str, object] = {}

    def fake_up(
        manifest: object,
        models: list[Model],
        location: stack_state.Location,
        *rest: object,
        together: frozenset[int],
    ) -> int:
        seen["models"] = [m.service for m in models]
        seen["written"] = location.compose_file.read_text(encoding="utf-8")
        seen["project"] = location.project
        seen["rest"] = rest
        return 7

    monkeypatch.setattr(live_view, "up", fake_up)
    output = tmp_path / "docker-compose.yml"
    code = cli.main(
        ["up", str(REPO / "compose/cpu.yaml"), "-o", str(output), "--max-restarts", "3"]
    )
    assert code == 7
    assert seen["models"] == ["qwen", "smollm"]
    assert "services:" in str(seen["written"])
    assert seen["rest"] == (3, 3600)
    assert seen["project"] == stack_state.project_name(parse_cpu_manifest(), output)


@pytest.mark.parametrize("command", ["up", "status", "leaderboard"])
def test_every_operating_command_finds_the_stack_the_same_way(command: str, tmp_path: Path) -> None:
    """`up my.yaml -o my-compose.yml` started a stack; `status my.yaml` and `leaderboard my.yaml`
    (no -o) must find it: the project is the manifest's, else the compose file's folder name,
    and every command takes -o and -p alike."""
    from arenastack import cli
    from arenastack.manifest import parse_manifest
    from arenastack.operate import leaderboard_cli

    manifest = parse_manifest({"models": {"a": {"model": "org/a"}}})
    folder = tmp_path / "My_Experiment"
    folder.mkdir()
    parser = leaderboard_cli.parser() if command == "leaderboard" else cli.operator_parser(command)
    started = stack_state.locate(manifest, parser.parse_args(["-o", str(folder / "my.yml")]))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        found = stack_state.locate(manifest, parser.parse_args(["m.yaml"]))
    assert found.project == started.project == "my_experiment"
    assert stack_state.locate(manifest, parser.parse_args(["-p", "other"])).project == "other"
    named = parse_manifest({"project": "june", "models": {"a": {"model": "org/a"}}})
    assert stack_state.locate(named, parser.parse_args(["-o", "/elsewhere/x.yml"])).project == (
        "june"
    )


def parse_cpu_manifest() -> Manifest:
    from arenastack.manifest import load_manifest

    loaded = load_manifest(REPO / "compose/cpu.yaml")
    assert loaded.manifest is not None
    return loaded.manifest


def test_a_model_that_fails_beside_others_starting_together_stops_none_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three models on GPU 0 starting together: `a` fails at once (its log has a known cause),
    `b` and `c` become healthy later. The failure is reported as it happens, and the watch goes
    on until b and c are healthy; a chained model after `a` would be reported as never started."""
    models = [model("a", 0), model("b", 0), model("c", 0)]
    watch = live_view.Watch(models, [], max_restarts=2, started=0.0, together=frozenset({0}))
    assert watch.after == {"a": [], "b": [], "c": []}
    fetched = container("fetch-models", status="exited")
    loading = {"fetch-models": fetched, "b": container("b"), "c": container("c")}
    looks = iter(
        [
            {**loading, "a": container("a", status="restarting", restarts=1)},
            {**loading, "a": container("a", status="exited")},
            {
                **loading,
                "a": container("a", status="exited"),
                "b": container("b", health="healthy"),
            },
        ]
        + [
            {
                "fetch-models": fetched,
                "a": container("a", status="exited"),
                "b": container("b", health="healthy"),
                "c": container("c", health="healthy"),
            }
        ]
        * 3
    )
    monkeypatch.setattr(stack_state, "look", lambda docker, project: next(looks))
    monkeypatch.setattr(stack_state, "logs", lambda docker, c, n: ["error: unrecognized arguments"])
    reported: list[str] = []
    shown: list[dict[str, str]] = []

    class StillStarting:
        def poll(self) -> None:
            return None

    class Recording:
        def show(self, watch: live_view.Watch, clock: float) -> None:
            shown.append({s: line.state for s, line in watch.lines.items()})

    failures = live_view._watch(
        None,  # type: ignore[arg-type]
        "p",
        watch,
        StillStarting(),  # type: ignore[arg-type]
        None,
        600.0,
        Recording(),  # type: ignore[arg-type]
        lambda failure: reported.append(failure.service),
        now=lambda: 0.0,
        sleep=lambda seconds: None,
    )
    assert [f.service for f in failures] == reported == ["a"]
    assert shown[0]["a"] == "failed", "reported at the first look that shows it"
    assert shown[-1] == {"fetch-models": "done", "a": "failed", "b": "healthy", "c": "healthy"}
    chained = live_view.Watch(models, [], max_restarts=2, started=0.0)
    chained.failed["a"] = failures[0]
    assert chained.blocked("b") and chained.blocked("c")


def test_status_shows_the_bytes_of_a_kv_cache_sized_in_bytes() -> None:
    status = stack_status.ModelStatus(
        service="qwen3", display_name="Qwen3", gpus=[0], fraction=0.16,
        cpu_kvcache_space_gib=None, state="running", health="healthy", restarts=0,
        uptime_s=10.0, metrics_url=None, kv_cache_usage=0.25, kv_cache_bytes=4 * 2**30,
        kv_cache_used_bytes=2**30,
    )  # fmt: skip
    assert stack_status._kv_cache(status) == "25.0 % (1.00/4.0 GiB)"
    status.kv_cache_bytes = status.kv_cache_used_bytes = None
    assert stack_status._kv_cache(status) == "25.0 %"
