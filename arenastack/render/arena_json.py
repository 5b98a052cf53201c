"""arena.json: what the web UI and the leaderboard service need to know about the experiment.

Mounted into both containers as an inline Compose config. The UI reads its title, description
and model descriptions from it (instead of FastChat's public-arena texts); the service reads
where the votes are and how to rate them.
"""

from __future__ import annotations

import json
from typing import Any

from arenastack.arena.leaderboard import RESULT_FOLDER
from arenastack.manifest import Manifest, Model, experiment_of

ARENA_FILE = "/etc/arenastack/arena.json"
VOLUME = "/logs"


def logs_folder(manifest: Manifest) -> str:
    """Where the web UI writes this experiment's conversations and votes (its LOGDIR)."""
    return f"{VOLUME}/{experiment_of(manifest)}"


def _where(manifest: Manifest, model: Model) -> str:
    if manifest.device == "cpu":
        return "CPU"
    gpus = "auto" if model.gpus == "auto" else ", ".join(str(g) for g in model.gpus)
    fraction = model.gpu_memory_utilization
    share = fraction if fraction == "auto" else f"{float(fraction):.2f}"
    return f"GPU {gpus} × {share}"


def describe(manifest: Manifest, model: Model) -> dict[str, Any]:
    return {
        "name": model.display_name,
        "service": model.service,
        "source": model.model,
        "context": model.max_model_len,
        "placement": _where(manifest, model),
    }


def document(manifest: Manifest, models: list[Model]) -> dict[str, Any]:
    experiment = experiment_of(manifest)
    board = manifest.leaderboard
    default_description = (
        f"{len(models)} models answer your prompt side by side without their names; vote for "
        "the better answer. The **Leaderboard** tab ranks them from this experiment's votes."
    )
    return {
        "experiment": experiment,
        "title": manifest.webui.title or f"Arena: {experiment}",
        "description": manifest.webui.description
        if manifest.webui.description is not None
        else default_description,
        "models": [describe(manifest, model) for model in models],
        "volume": VOLUME,
        "logs": logs_folder(manifest),
        "result": f"{logs_folder(manifest)}/{RESULT_FOLDER}",
        "leaderboard": {
            "enabled": leaderboard_enabled(manifest),
            "bothbad": board.bothbad,
            "include_named": board.include_named,
            "identity_filter": board.identity_filter,
            "bootstrap_rounds": board.bootstrap_rounds,
            "refresh_seconds": board.refresh_seconds,
        },
    }


def leaderboard_enabled(manifest: Manifest) -> bool:
    """The leaderboard service runs, and its tab shows, only in the arena UI (mode 'multi')."""
    return manifest.leaderboard.enabled and manifest.webui.mode == "multi"


def leaderboard_ready_command() -> list[str]:
    """Succeeds once the leaderboard service wrote its first result (an empty table when there
    are no votes yet)."""
    check = (
        "import json, os, sys; a = json.load(open(sys.argv[1])); "
        "sys.exit(not os.path.exists(a['result'] + '/leaderboard.json'))"
    )
    return ["python3", "-c", check, ARENA_FILE]


def leaderboard_command() -> list[str]:
    return ["python3", "-m", "arenastack.arena.leaderboard_service", "--arena", ARENA_FILE]


def render(manifest: Manifest, models: list[Model]) -> str:
    return json.dumps(document(manifest, models), indent=2, ensure_ascii=False) + "\n"
