"""The gateway's per-model health in `status`: LiteLLM's /health answer read into one line per
model, the request made inside the container (run here against a real HTTP server), and the
paths where there is no answer: no key, no gateway, a gateway that is down or silent."""

from __future__ import annotations

import copy
import http.server
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from arenastack.gateway import litellm as gateway
from arenastack.operate import gateway_health, stack_state, stack_status
from arenastack.operate.gateway_health import HEALTHY, NOT_LISTED, UNHEALTHY, GatewayHealth, Reach
from arenastack.plan.vllm_metrics import metric_names
from arenastack.render.pipeline import prepare
from tests.conftest import FIXTURES, REPO
from tests.unit.operate.test_up_status import container

ONE_DOWN = json.loads((FIXTURES / "litellm" / "health-one-down.json").read_text())
SERVICES = ["tiny-a", "tiny-b", "tiny-q"]
KEY = "sk-test-health-5d1e"


# --- LiteLLM's answer ----------------------------------------------------------------------


def test_the_answer_names_the_model_that_is_down_with_its_error_on_one_line() -> None:
    reach = gateway_health.read_answer(ONE_DOWN, SERVICES)
    assert reach["tiny-a"] == reach["tiny-q"] == Reach(HEALTHY)
    down = reach["tiny-b"]
    assert down.health == UNHEALTHY
    assert down.error == (
        "litellm.InternalServerError: InternalServerError: Hosted_vllmException - Cannot connect "
        "to host tiny-b:8000 ssl:<ssl.SSLContext object at 0x7f4e990d68d0> [Connect call failed "
        "('172.19.0.7', 8000)]"
    )


def test_a_model_the_gateway_does_not_list_is_said_so() -> None:
    reach = gateway_health.read_answer(ONE_DOWN, [*SERVICES, "added-since"])
    assert reach["added-since"] == Reach(NOT_LISTED)
    # And an endpoint of a model this manifest does not have is left out.
    assert set(gateway_health.read_answer(ONE_DOWN, ["tiny-a"])) == {"tiny-a"}


def test_without_a_model_id_the_api_base_names_the_service() -> None:
    answer = copy.deepcopy(ONE_DOWN)
    for endpoint in answer["healthy_endpoints"] + answer["unhealthy_endpoints"]:
        del endpoint["model_id"]
    reach = gateway_health.read_answer(answer, SERVICES)
    assert [reach[s].health for s in SERVICES] == [HEALTHY, UNHEALTHY, HEALTHY]


def test_a_timed_out_probe_and_one_without_a_reason() -> None:
    answer = copy.deepcopy(ONE_DOWN)
    # run_with_timeout's entry (litellm/proxy/health_check.py): no stack trace.
    answer["unhealthy_endpoints"].append(
        {
            "api_base": "http://tiny-q:8000/v1",
            "model": "hosted_vllm/tiny-q",
            "error": "Timeout exceeded",
            "model_id": "tiny-q",
            "exception_status": 408,
        }
    )
    # A probe that raised instead of returning: the entry has no `error`.
    answer["unhealthy_endpoints"].append({"model": "hosted_vllm/tiny-a", "model_id": "tiny-a"})
    reach = gateway_health.read_answer(answer, SERVICES)
    assert reach["tiny-q"] == Reach(UNHEALTHY, "Timeout exceeded"), "unhealthy wins"
    assert reach["tiny-a"] == Reach(UNHEALTHY, "no reason given")


def test_one_line_drops_the_stack_trace_and_bounds_the_length() -> None:
    error = "litellm.InternalServerError: Hosted_vllmException -\n  " + "x" * 500
    line = gateway_health.one_line(error + "\nstack trace: Traceback ...")
    assert "\n" not in line and "stack trace" not in line
    assert len(line) == gateway_health.ERROR_CHARS and line.endswith("…")
    assert line.startswith("litellm.InternalServerError: Hosted_vllmException - xxx")


@pytest.mark.parametrize(
    ("printed", "problem"),
    [
        ({"problem": "LITELLM_MASTER_KEY is not set in the gateway container"}, "LITELLM_MASTER"),
        ({"status": 401, "body": '{"error": {"message": "invalid or missing API key"}}'}, "401"),
        ({"status": 200, "body": {"status": "healthy"}}, "not LiteLLM's /health answer"),
    ],
)
def test_no_answer_is_one_line_saying_why(printed: dict[str, Any], problem: str) -> None:
    reach, why = gateway_health.read_output(json.dumps(printed) + "\n", SERVICES)
    assert reach == {}
    assert why is not None and problem in why and "\n" not in why


def test_output_that_is_not_ours_is_reported() -> None:
    reach, why = gateway_health.read_output("OCI runtime exec failed\n", SERVICES)
    assert reach == {} and why is not None and "OCI runtime exec failed" in why


# --- the request inside the container, against a real server -------------------------------


class FakeLiteLLM(http.server.BaseHTTPRequestHandler):
    """Answers /health like LiteLLM to the right key (after `delay` seconds), 401 otherwise."""

    answer: ClassVar[dict[str, Any]] = ONE_DOWN
    delay: ClassVar[float] = 0.0
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        time.sleep(self.delay)
        right = self.path == "/health" and self.headers.get("Authorization") == f"Bearer {KEY}"
        body = json.dumps(self.answer if right else {"error": {"message": "no key"}}).encode()
        try:
            self.send_response(200 if right else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, as the timeout test wants

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def litellm() -> Iterator[str]:
    FakeLiteLLM.seen, FakeLiteLLM.delay = [], 0.0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLiteLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def run_ask(url: str, key: str | None, timeout: float = 5) -> tuple[dict[str, Reach], str | None]:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != gateway.MASTER_KEY_ENV}
    if key is not None:
        env[gateway.MASTER_KEY_ENV] = key
    done = subprocess.run(
        [sys.executable, "-c", gateway_health.ASK, url, str(timeout), gateway.MASTER_KEY_ENV],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout, "the key never leaves the container"
    return gateway_health.read_output(done.stdout, SERVICES)


def test_the_request_sends_the_containers_key(litellm: str) -> None:
    reach, problem = run_ask(litellm, KEY)
    assert problem is None
    assert [reach[s].health for s in SERVICES] == [HEALTHY, UNHEALTHY, HEALTHY]
    assert FakeLiteLLM.seen == [f"Bearer {KEY}"]


def test_without_a_key_in_the_container_nothing_is_asked(litellm: str) -> None:
    reach, problem = run_ask(litellm, None)
    assert reach == {} and problem == "LITELLM_MASTER_KEY is not set in the gateway container"
    assert FakeLiteLLM.seen == []
    _, refused = run_ask(litellm, "sk-wrong")
    assert refused is not None and refused.startswith("the gateway answered /health with 401")


def test_a_silent_gateway_is_given_up_on(litellm: str) -> None:
    # The answer would come after 3 s and be healthy, so the problem below shows the 0.5 s timeout
    # fired; no wall-clock assertion, which a busy machine's slow subprocess start could break.
    FakeLiteLLM.delay = 3.0
    reach, problem = run_ask(litellm, KEY, timeout=0.5)
    assert reach == {} and problem == "the gateway did not answer /health: no answer within 0.5 s"


def test_a_gateway_that_does_not_listen() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reach, problem = run_ask(f"http://127.0.0.1:{port}/health", KEY)
    assert reach == {} and problem is not None
    assert problem.startswith("the gateway did not answer /health:") and "refused" in problem


# --- `docker exec` around it --------------------------------------------------------------------

# Stands in for `docker`: checks the exec it is given, then runs the program in it with this
# Python against the test server.
DOCKER_STAND_IN = """
import subprocess, sys
given = sys.argv[2:]
assert given[:2] == ["exec", "id-gateway"], given
program = given[2:]
assert program[:2] == ["python3", "-c"] and program[3] == "http://127.0.0.1:4000/health", program
program[0], program[3] = sys.executable, sys.argv[1]
sys.exit(subprocess.call(program))
"""


def test_check_asks_from_inside_the_gateway_container(
    litellm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(gateway.MASTER_KEY_ENV, KEY)
    docker = [sys.executable, "-c", DOCKER_STAND_IN, litellm]
    health = gateway_health.check(container("gateway"), docker, SERVICES)
    assert (health.state, health.problem) == ("running", None)
    assert [health.models[s].health for s in SERVICES] == [HEALTHY, UNHEALTHY, HEALTHY]
    assert health.took_s is not None and health.took_s > 0


def test_ask_says_why_docker_exec_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    said = "Error response from daemon: container id-gateway is not running"
    refusing = [sys.executable, "-c", f"import sys; sys.exit({said!r})"]
    assert gateway_health.ask(refusing, "id-gateway", SERVICES) == (
        {},
        f"`docker exec` in the gateway failed: {said}",
    )
    _, missing = gateway_health.ask([str(REPO / "no-such-docker")], "id-gateway", SERVICES)
    assert missing is not None and missing.startswith("cannot run `docker exec`")
    monkeypatch.setattr(gateway_health, "EXEC_TIMEOUT_S", 0.5)
    hanging = [sys.executable, "-c", "import time; time.sleep(30)"]
    _, silent = gateway_health.ask(hanging, "id-gateway", SERVICES)  # only a timeout says this
    assert silent == "no answer from `docker exec` in the gateway within 0.5 s"


def test_a_gateway_that_is_not_running_is_not_asked() -> None:
    # A docker command that cannot run: asking would report that instead.
    never = [str(REPO / "no-such-docker")]
    absent = gateway_health.check(None, never, SERVICES)
    assert (absent.state, absent.models) == ("absent", {})
    assert absent.problem == "the gateway has no container: is the stack up?"
    exited = gateway_health.check(container("gateway", status="exited"), never, SERVICES)
    assert exited.problem == "the gateway is exited: no per-model health"


# --- in `status` -------------------------------------------------------------------------------


def model_status(service: str) -> stack_status.ModelStatus:
    return stack_status.ModelStatus(
        service, service.upper(), [0], None, 1, "running", "healthy", 0, 10.0, None
    )


def test_status_json_and_table_show_the_gateways_reach(capsys: pytest.CaptureFixture[str]) -> None:
    reach = gateway_health.read_answer(ONE_DOWN, SERVICES)
    status = stack_status.StackStatus(
        "p",
        "current",
        [model_status(s) for s in SERVICES],
        {},
        GatewayHealth("running", None, 0.4, reach),
    )
    data = json.loads(json.dumps(status.as_json()))
    assert data["gateway"]["state"] == "running" and data["gateway"]["problem"] is None
    assert data["gateway"]["models"]["tiny-a"] == {"health": "healthy", "error": None}
    assert data["gateway"]["models"]["tiny-b"]["health"] == "unhealthy"
    assert "Cannot connect to host tiny-b:8000" in data["gateway"]["models"]["tiny-b"]["error"]
    # The existing fields are all still there.
    assert set(data) == {"project", "metric_names", "models", "services", "gateway"}

    stack_status.print_table(status, "cpu")
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "model" in line and "state" in line)
    assert header.rstrip(" │┃|").endswith("gateway")
    row_b = next(line for line in out.splitlines() if "│ tiny-b" in line or "tiny-b " in line)
    assert "unhealthy" in row_b
    assert (
        "gateway: tiny-b unhealthy: litellm.InternalServerError: InternalServerError: "
        "Hosted_vllmException - Cannot connect to host tiny-b:8000 ssl:<ssl.SSLContext object at "
        "0x7f4e990d68d0> [Connect call failed ('172.19.0.7', 8000)]"
    ) in out


def test_status_says_in_one_line_why_the_gateway_column_is_empty(
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = GatewayHealth("restarting", problem="the gateway is restarting: no per-model health")
    status = stack_status.StackStatus("p", "current", [model_status("tiny-a")], {}, down)
    stack_status.print_table(status, "cpu")
    out = capsys.readouterr().out
    assert "gateway: per-model health unknown: the gateway is restarting" in out
    assert status.as_json()["gateway"]["models"] == {}

    reached = GatewayHealth("running", None, 0.4, {"tiny-a": Reach(HEALTHY)})
    stack_status.print_table(stack_status.StackStatus("p", "current", [], {}, reached), "cpu")
    assert "gateway: reaches every model (asked in 0.4 s)" in capsys.readouterr().out


def test_status_without_a_gateway_has_no_gateway_column(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = stack_status.StackStatus("p", "current", [model_status("tiny-a")])
    assert status.as_json()["gateway"] is None
    stack_status.print_table(status, "cpu")
    assert "gateway" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (REPO / "compose/cpu.yaml", None),
        (FIXTURES / "manifests/gateway.yaml", "the gateway has no container: is the stack up?"),
    ],
    ids=["no gateway", "gateway, stack down"],
)
def test_collect_asks_the_gateway_only_when_the_stack_has_one(
    manifest: Path, expected: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No containers at all (the stack is down): status still answers, and says so."""
    monkeypatch.setattr(stack_state, "look", lambda docker, project: {})
    prepared = prepare(manifest)
    names = metric_names((0, 32, 0))
    status = stack_status.collect(
        prepared.manifest,
        prepared.plan.models,
        names,
        stack_state.Location(tmp_path / "c.yml", "p"),
        prepared.gpus,
        0,
    )
    assert all(m.state == "absent" for m in status.models)
    if expected is None:
        assert status.gateway is None
    else:
        assert status.gateway is not None and status.gateway.problem == expected
