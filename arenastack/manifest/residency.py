"""The `residency` block: more models than fit awake, the others asleep in host memory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from arenastack.manifest.fields import Port, PositiveInt, Strict


class Residency(Strict):
    awake_per_gpu: PositiveInt = Field(
        description="At most this many models of a GPU are awake at a time; the others sleep "
        "(vLLM's sleep mode: weights in host memory, KV cache dropped) and are woken by the "
        "residency service when a request for them comes. The planner checks that this many of "
        "the largest awake, plus what each sleeping server keeps, fit planner.gpu_budget."
    )
    sleep_level: Literal[1, 2] = Field(
        1,
        description="vLLM's sleep level. 1 moves the weights to pinned host memory and wakes in "
        "about 0.4 s. 2 discards them, and vLLM's /wake_up does not load them again: refused.",
    )
    wake_timeout_s: PositiveInt = Field(
        60,
        description="How long a request waits for its model (a free slot on its GPU, then the "
        "wake) before it is answered 503 with the reason.",
    )
    port: Port | None = Field(
        None,
        description="Host port of the residency service's OpenAI API (and its /residency and "
        "/metrics). Default: not published; the web UI and the gateway reach it inside the stack.",
    )
