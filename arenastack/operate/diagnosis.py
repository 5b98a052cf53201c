"""One line of likely cause for a model server that failed, from its log and its exit.

Only known cases are named; anything else is left to the log lines printed with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from arenastack.operate.stack_state import Container


@dataclass(frozen=True)
class Cause:
    pattern: re.Pattern[str]
    explain: str  # {service} is the compose service (= manifest key)


CAUSES = [
    Cause(
        re.compile(r"Free memory on device.*is less than desired GPU memory utilization"),
        "the GPU had less free memory than models.{service}.gpu_memory_utilization asks for: "
        "another process or a model starting at the same moment holds GPU memory; lower the "
        "fraction or free the GPU (`render.py plan` shows what each model was given).",
    ),
    Cause(
        re.compile(r"No available memory for the cache blocks"),
        "after weights and activations the fraction left nothing for the KV cache: raise "
        "models.{service}.gpu_memory_utilization or lower its max_model_len.",
    ),
    Cause(
        re.compile(
            r"GatedRepoError|Cannot access gated repo|Access to model .* is restricted"
            r"|401 Client Error|403 Client Error"
        ),
        "the model's repository is gated: accept its licence on the hub and put a token that "
        "may read it in .env as HF_TOKEN.",
    ),
    Cause(
        re.compile(
            r"RepositoryNotFoundError|Repository Not Found|404 Client Error"
            r"|is not a local folder and is not a valid model identifier"
        ),
        "the model's repository does not exist (or is private): check models.{service}.model.",
    ),
    Cause(
        re.compile(r"CUDA out of memory|OutOfMemoryError"),
        "torch ran out of GPU memory while loading or profiling: raise "
        "models.{service}.gpu_memory_utilization, lower max_model_len, or move the model.",
    ),
    Cause(
        re.compile(r"Insufficient space in /dev/shm"),
        "the container's /dev/shm is too small: raise models.{service}.shm_size.",
    ),
    Cause(
        re.compile(r"error: unrecognized arguments|error: argument"),
        "vLLM rejected its command line: check models.{service}.extra_args against the vLLM "
        "version the image runs.",
    ),
]


def likely_cause(service: str, log: list[str], container: Container | None) -> str | None:
    for line in reversed(log):
        for cause in CAUSES:
            if cause.pattern.search(line):
                return cause.explain.format(service=service)
    if container is not None and (container.oom_killed or container.exit_code == 137):
        return (
            "the container was killed for lack of host memory (out-of-memory kill, exit 137): "
            "give the machine more memory or run fewer models."
        )
    return None
