"""FastChat's api_endpoints.json: the models registered with the web UI as OpenAI APIs.

The UI talks to vLLM's own OpenAI server by service name. FastChat's own `vllm_worker` is not
used: it breaks on vLLM >= 0.6.2 (`use_beam_search`, FastChat #3600) and on the V1 engine.
"""

from __future__ import annotations

import json

from arenastack.core.services import model_api_base
from arenastack.manifest import Model

# FastChat reads `api_key` as a required key, and an empty one makes it fall back to
# OPENAI_API_KEY; the vLLM servers are started without --api-key, so any placeholder works.
NO_API_KEY = "none"


def entries(models: list[Model], via_residency: bool = False) -> dict[str, dict[str, object]]:
    return {
        model.display_name: {
            "model_name": model.served_model_name,
            "api_type": "openai",
            "api_base": model_api_base(model.service, via_residency),
            "api_key": NO_API_KEY,
            "anony_only": False,
            # Read by arenastack_fastchat, ignored by FastChat: what system prompt to send.
            "system_prompt": model.system_prompt or "",
        }
        for model in models
    }


def render(models: list[Model], via_residency: bool = False) -> str:
    return json.dumps(entries(models, via_residency), indent=2, ensure_ascii=False) + "\n"
