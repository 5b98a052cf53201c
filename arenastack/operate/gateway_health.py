"""The gateway's per-model health, for `render.py status`: which models LiteLLM can reach.

LiteLLM's `GET /health` needs the master key, and the key is in the gateway container's
environment (Compose passes it by name from the shell or .env). So the request is made inside that
container (`docker exec`), by a few lines of Python's standard library that read the key there: it
never reaches this process, a command line or the output. `docker exec` on the container `status`
has just inspected, not `docker compose exec`: Compose would first parse the compose file, and
refuse where a variable it requires (GRAFANA_ADMIN_PASSWORD) is in neither the shell nor .env.

What LiteLLM 1.108.7 does on `GET /health` (litellm/proxy/health_check.py and
health_endpoints/_health_endpoints.py): it sends every model a real chat request at once, each
bounded by `model_info.health_check_timeout`, and answers

    {"healthy_endpoints": [{"model": "hosted_vllm/tiny-a", "api_base": "http://tiny-a:8000/v1",
                            "model_id": "tiny-a"}, ...],
     "unhealthy_endpoints": [{..., "model_id": "tiny-b", "error": "<the exception>\\nstack trace:
                              <traceback>", "exception_status": 500}, ...],
     "healthy_count": 2, "unhealthy_count": 1}

`model_id` is the deployment's `model_info.id`, which the generated config sets to the service
name (gateway/litellm.py); `api_base` (shown to the master key, an admin) names it too. The
config limits each probe to one token and litellm.HEALTH_CHECK_TIMEOUT_S seconds, so asking costs
each model a short prefill and one token, and a model that hangs is reported rather than waited on.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from arenastack.core.services import GATEWAY_PORT
from arenastack.gateway import litellm
from arenastack.operate.stack_state import Container

SERVICE = "gateway"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
# The gateway answered, but lists no deployment of this model (a config from another manifest).
NOT_LISTED = "not listed"
ERROR_CHARS = 200
# The request inside the container waits for LiteLLM's slowest probe and a little more; the
# `docker exec` around it, for that and the exec itself on a busy host.
REQUEST_TIMEOUT_S = litellm.HEALTH_CHECK_TIMEOUT_S + 5
EXEC_TIMEOUT_S = REQUEST_TIMEOUT_S + 20

# Runs inside the gateway container (its python3: the image's healthcheck uses it too). Prints one
# JSON object: {"status": HTTP status, "body": the answer} or {"problem": why there is none}.
ASK = """
import json, os, sys, urllib.error, urllib.request
url, timeout, key_name = sys.argv[1], float(sys.argv[2]), sys.argv[3]
key = os.environ.get(key_name, "").strip()
if not key:
    print(json.dumps({"problem": key_name + " is not set in the gateway container"}))
    sys.exit()
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
        print(json.dumps({"status": response.status, "body": json.load(response)}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode("utf-8", "replace")}))
except (OSError, ValueError) as error:
    reason = getattr(error, "reason", error)
    if isinstance(reason, TimeoutError):
        reason = "no answer within %g s" % timeout
    print(json.dumps({"problem": "the gateway did not answer /health: %s" % reason}))
"""


@dataclass(frozen=True)
class Reach:
    """Whether the gateway reached one model, and LiteLLM's error in one line if not."""

    health: str  # HEALTHY, UNHEALTHY or NOT_LISTED
    error: str | None = None


@dataclass
class GatewayHealth:
    """`status`'s view of the gateway: its container's state, and either every model's reach or
    one line saying why there is none."""

    state: str  # the container's: running, restarting, exited, ..., or absent
    problem: str | None = None
    took_s: float | None = None
    models: dict[str, Reach] = field(default_factory=dict)


def one_line(error: object, limit: int = ERROR_CHARS) -> str:
    """LiteLLM's error without its stack trace, on one line, at most `limit` characters."""
    text = " ".join(str(error).split("\nstack trace:", 1)[0].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _service_of(endpoint: dict[str, Any], services: list[str]) -> str | None:
    model_id = endpoint.get("model_id")
    if model_id in services:
        return str(model_id)
    api_base = endpoint.get("api_base")
    if isinstance(api_base, str):
        host = urllib.parse.urlsplit(api_base).hostname
        if host in services:
            return host
    return None


def read_answer(body: object, services: list[str]) -> dict[str, Reach]:
    """Each service's reach from LiteLLM's /health answer; raises ValueError on another shape."""
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), list) for key in ("healthy_endpoints", "unhealthy_endpoints")
    ):
        raise ValueError(f"not LiteLLM's /health answer: {one_line(json.dumps(body))}")
    reach = {service: Reach(NOT_LISTED) for service in services}
    for endpoint in body["healthy_endpoints"]:
        service = _service_of(endpoint, services) if isinstance(endpoint, dict) else None
        if service is not None and reach[service].health != UNHEALTHY:
            reach[service] = Reach(HEALTHY)
    # Unhealthy wins: with several deployments of one model, some of its requests fail.
    for endpoint in body["unhealthy_endpoints"]:
        service = _service_of(endpoint, services) if isinstance(endpoint, dict) else None
        if service is not None:
            error = endpoint.get("error")
            reach[service] = Reach(UNHEALTHY, one_line(error) if error else "no reason given")
    return reach


def read_output(output: str, services: list[str]) -> tuple[dict[str, Reach], str | None]:
    """The reach of every service, or the one-line problem, from what ASK printed."""
    lines = output.strip().splitlines()
    try:
        printed = json.loads(lines[-1]) if lines else None
    except ValueError:
        printed = None
    if not isinstance(printed, dict):
        return {}, f"unexpected output from the gateway container: {one_line(output) or 'none'}"
    if "problem" in printed:
        return {}, one_line(printed["problem"])
    status, body = printed.get("status"), printed.get("body")
    if status != 200:
        return {}, f"the gateway answered /health with {status}: {one_line(body)}"
    try:
        return read_answer(body, services), None
    except ValueError as error:
        return {}, str(error)


def ask(
    docker_command: list[Any], container_id: str, services: list[str]
) -> tuple[dict[str, Reach], str | None]:
    """Ask the running gateway, from inside its container; never raises."""
    url = f"http://127.0.0.1:{GATEWAY_PORT}/health"
    command = [
        *docker_command, "exec", container_id,  # no -t: no TTY, the output as printed
        "python3", "-c", ASK, url, str(REQUEST_TIMEOUT_S), litellm.MASTER_KEY_ENV,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=EXEC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {}, f"no answer from `docker exec` in the gateway within {EXEC_TIMEOUT_S} s"
    except OSError as error:
        return {}, f"cannot run `docker exec`: {error.strerror or error}"
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        return {}, f"`docker exec` in the gateway failed: {one_line(said[-1] if said else '')}"
    return read_output(done.stdout, services)


def check(
    container: Container | None, docker_command: list[Any], services: list[str]
) -> GatewayHealth:
    """The gateway's health of every model, asked only of a running gateway container."""
    if container is None:
        return GatewayHealth("absent", problem="the gateway has no container: is the stack up?")
    state = container.status
    if state != "running":
        return GatewayHealth(state, problem=f"the gateway is {state}: no per-model health")
    started = time.monotonic()
    models, problem = ask(docker_command, container.id, services)
    return GatewayHealth(state, problem, round(time.monotonic() - started, 2), models)
