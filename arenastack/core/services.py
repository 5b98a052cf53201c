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


def model_api_base(service: str, via_residency: bool = False) -> str:
    """Where the stack's own clients (the web UI, the gateway) reach a model's OpenAI API: its
    server, or, with residency, the residency service, which wakes the model first."""
    host, port = (RESIDENCY_SERVICE, RESIDENCY_PORT) if via_residency else (service, VLLM_PORT)
    return f"http://{host}:{port}/v1"
