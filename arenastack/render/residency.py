"""Residency in the stack: the residency service's config, the start-up waves, and how a model
server that may sleep is started and checked.

Start-up comes in waves that fit (plan/residency.py checks the worst of them): on each GPU, in
manifest order, the last `awake_per_gpu` models are the last wave and the ones before them are
cut into waves of that size from the end, so the first wave may be smaller. A wave starts once
every model of the wave before it on its GPU is healthy, and a model of an earlier wave counts as
healthy only once it has been put to sleep (the residency service does that as soon as it is up,
because a later wave is still to come: residency/policy.py). So a GPU holds at most one wave
loading plus the sleeping residue of the waves before it, and the last wave stays awake.
"""

from __future__ import annotations

import json

from arenastack.core.services import RESIDENCY_PORT, SERVER_KEEP_ALIVE_S, VLLM_PORT
from arenastack.manifest import Manifest, Model
from arenastack.plan.sharing import models_by_gpu

CONFIG_FILE = "/etc/arenastack/residency.json"
SLEEP_FLAG = "--enable-sleep-mode"
# /sleep, /wake_up and /is_sleeping exist only in vLLM's dev mode, which opens other internal
# endpoints too: the servers publish no port, and only the residency service calls them.
DEV_MODE_ENVIRONMENT = {"VLLM_SERVER_DEV_MODE": "1"}
# A model of an earlier wave is healthy once /health answers and it has been asleep once; the
# marker keeps it healthy when it is woken later (a file in the container, gone with it).
HAS_SLEPT = """\
import json, os, sys, urllib.request as request
base, marker = sys.argv[1:3]
request.urlopen(base + "/health", timeout=4)
if not os.path.exists(marker):
    if not json.load(request.urlopen(base + "/is_sleeping", timeout=4))["is_sleeping"]:
        sys.exit("up, not yet put to sleep: the next wave waits for that")
    open(marker, "w").close()
"""


def gpu_of(model: Model) -> int:
    assert model.gpus != "auto" and len(model.gpus) == 1, "residency checks one GPU per model"
    return model.gpus[0]


def waves(models: list[Model], awake_per_gpu: int) -> dict[str, int]:
    """Each model's start-up wave on its GPU, 0 first."""
    found = {}
    for sharing in models_by_gpu(models).values():
        count = (len(sharing) - 1) // awake_per_gpu + 1
        for position, model in enumerate(sharing):
            from_the_end = (len(sharing) - 1 - position) // awake_per_gpu
            found[model.service] = count - 1 - from_the_end
    return found


def start_after(models: list[Model], wave_of: dict[str, int]) -> list[list[str]]:
    """For each model, the models of the wave before its own on its GPU."""
    return [
        [
            other.service
            for other in models
            if gpu_of(other) == gpu_of(model)
            and wave_of[other.service] == wave_of[model.service] - 1
        ]
        for model in models
    ]


def last_wave(models: list[Model], awake_per_gpu: int) -> set[str]:
    """The models that stay awake once the stack is up."""
    wave_of = waves(models, awake_per_gpu)
    final: dict[int, int] = {}
    for model in models:
        final[gpu_of(model)] = max(final.get(gpu_of(model), 0), wave_of[model.service])
    return {m.service for m in models if wave_of[m.service] == final[gpu_of(m)]}


HAS_SLEPT_MARKER = "/tmp/arenastack-has-slept"


def health_test(port: int = VLLM_PORT, marker: str = HAS_SLEPT_MARKER) -> list[str]:
    """The healthcheck of a model of an earlier wave: up, and asleep once."""
    return ["CMD", "python3", "-c", HAS_SLEPT, f"http://127.0.0.1:{port}", marker]


def config_text(manifest: Manifest, models: list[Model]) -> str:
    """The residency service's config (arenastack/residency/config.py reads it)."""
    residency = manifest.residency
    assert residency is not None
    wave_of = waves(models, residency.awake_per_gpu)
    config = {
        "awake_per_gpu": residency.awake_per_gpu,
        "sleep_level": residency.sleep_level,
        "wake_timeout_s": residency.wake_timeout_s,
        "models": {
            model.service: {
                "url": f"http://{model.service}:{VLLM_PORT}",
                "gpu": str(gpu_of(model)),
                # The served name first; the web UI asks by display name.
                "names": list(dict.fromkeys([model.served_model_name, model.display_name])),
                "wave": wave_of[model.service],
            }
            for model in models
        },
    }
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def command() -> list[str]:
    port, keep_alive = str(RESIDENCY_PORT), str(SERVER_KEEP_ALIVE_S)
    return ["python3", "-m", "arenastack.residency", "--config", CONFIG_FILE, "--port", port,
            "--keep-alive", keep_alive]  # fmt: skip
