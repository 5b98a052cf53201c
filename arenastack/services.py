"""The stack's own services and the ports they listen on inside their containers.

Every container has its own network namespace, so these never clash; host ports are the
manifest's business.
"""

# A model may not take these names: they are the stack's own services.
STACK_SERVICES = ("controller", "webui", "fetch-models", "gateway")

VLLM_PORT = 8000
CONTROLLER_PORT = 21001
WEBUI_PORT = 7860
GATEWAY_PORT = 4000
