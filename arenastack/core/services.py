"""The stack's own services and the ports they listen on inside their containers.

Every container has its own network namespace, so these never clash; host ports are the
manifest's business.
"""

# A model may not take these names: they are the stack's own services (Compose services and
# Kubernetes Deployments and Services alike), whether or not the manifest enables them.
STACK_SERVICES = (
    "controller",
    "webui",
    "fetch-models",
    "gateway",
    "leaderboard",
    "prometheus",
    "grafana",
    "residency",
)

VLLM_PORT = 8000
CONTROLLER_PORT = 21001
WEBUI_PORT = 7860
GATEWAY_PORT = 4000
RESIDENCY_PORT = 8000
RESIDENCY_SERVICE = "residency"

# How long the stack's HTTP servers (vLLM, the residency service, the gateway) keep an idle
# connection open. uvicorn's default, 5 s, is no longer than their clients keep one in a pool
# (httpx 5 s, LiteLLM's aiohttp 15 s, Go 90 s): a client may then send a request on a connection
# the server is closing, and it fails ("Cannot write to closing transport", seen in CI through
# the gateway). A server that waits longer than every client lets the client close first.
SERVER_KEEP_ALIVE_S = 120


def model_api_base(service: str, via_residency: bool = False) -> str:
    """Where the stack's own clients (the web UI, the gateway) reach a model's OpenAI API: its
    server, or, with residency, the residency service, which wakes the model first."""
    host, port = (RESIDENCY_SERVICE, RESIDENCY_PORT) if via_residency else (service, VLLM_PORT)
    return f"http://{host}:{port}/v1"
