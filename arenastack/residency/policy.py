"""Who may be awake: the residency policy, synchronous and free of I/O, with an injected clock.

Each model is in one state:

    starting ─/health 200─▶ awake | asleep          (whatever /is_sleeping said)
    asleep ─admit─▶ waking ─woke─▶ awake ─admit or trim─▶ sleeping ─slept─▶ asleep
    waking ─wake_failed─▶ failed ─back-off over, admit─▶ waking
    sleeping ─sleep_failed─▶ failed

A GPU's slots are held by its starting, awake, waking and sleeping models: a starting one is
loading (or will load) its weights, and a sleeping one holds its memory until its /sleep has
answered, so a wake never starts before the sleep that makes room for it has finished, nor while
a start-up wave is loading. Failed models hold none (`control` says what risk that takes).

Start-up comes in waves (render/residency.py): while a model of a later wave on a GPU is still
starting, each model of an earlier wave is put to sleep once it is up and idle (`trim`), so that
the next wave finds its room; the last wave stays awake.

The service asks `admit` for every request and does what the decision says (start a wake, start
a sleep) outside the policy; `woke`, `slept` and the failure calls report the outcome. A request
counts as *waiting* from `arrive` until `admit` says ready or it gives up (`leave`), and as *in
flight* from then until `finish`. A model with requests in flight or waiting is never chosen to
sleep: vLLM's /sleep aborts the requests it is running (its default mode, "abort"), and a model
that has just woken must serve the requests that woke it before it can be taken away again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

STARTING, AWAKE, ASLEEP, WAKING, SLEEPING, FAILED = (
    "starting",
    "awake",
    "asleep",
    "waking",
    "sleeping",
    "failed",
)


@dataclass
class Residence:
    """One model as the policy sees it."""

    name: str
    gpu: str
    wave: int = 0
    state: str = STARTING
    in_flight: int = 0
    waiting: int = 0
    last_used: float | None = None
    healthy_at: float | None = None
    failed_until: float = 0.0
    error: str = ""

    @property
    def holds_slot(self) -> bool:
        return self.state in (STARTING, AWAKE, WAKING, SLEEPING)

    @property
    def idle(self) -> bool:
        return self.state == AWAKE and self.in_flight == 0 and self.waiting == 0


class Verdict(enum.Enum):
    READY = "ready"  # forward the request now; it is counted in flight
    WAIT = "wait"  # wait until the policy changes, then ask again
    FAILED = "failed"  # answer 503 with the reason


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    wake: str | None = None  # the service must wake this model (it is now `waking`)
    sleep: str | None = None  # the service must put this model to sleep (it is now `sleeping`)
    reason: str = ""


class Policy:
    def __init__(
        self,
        gpus: dict[str, str],
        awake_per_gpu: int,
        failed_backoff_s: float,
        clock: Callable[[], float],
        waves: dict[str, int] | None = None,
    ) -> None:
        """`gpus`: model → its GPU. `clock`: seconds, monotonic (time.monotonic in service).
        `waves`: model → its start-up wave (0 where absent)."""
        waves = waves or {}
        self.models = {name: Residence(name, gpu, waves.get(name, 0)) for name, gpu in gpus.items()}
        self.awake_per_gpu = awake_per_gpu
        self.failed_backoff_s = failed_backoff_s
        self.clock = clock

    def on_gpu(self, gpu: str) -> list[Residence]:
        return [m for m in self.models.values() if m.gpu == gpu]

    # --- requests ---------------------------------------------------------------------------

    def arrive(self, name: str) -> None:
        self.models[name].waiting += 1

    def leave(self, name: str) -> None:
        """A waiting request gave up (it timed out, failed or was cancelled)."""
        self.models[name].waiting -= 1

    def finish(self, name: str) -> None:
        model = self.models[name]
        model.in_flight -= 1
        model.last_used = self.clock()

    def admit(self, name: str) -> Decision:
        """What a waiting request for `name` may do now; changes state where it starts a wake
        or picks a model to sleep, so each decision is made once."""
        model = self.models[name]
        now = self.clock()
        if model.state == AWAKE:
            model.waiting -= 1
            model.in_flight += 1
            model.last_used = now
            return Decision(Verdict.READY)
        if model.state == FAILED and now < model.failed_until:
            retry = model.failed_until - now
            return Decision(Verdict.FAILED, reason=f"{model.error}; next try in {retry:.0f} s")
        if not self._wants_slot(model):  # starting, waking or sleeping: its turn comes
            return Decision(Verdict.WAIT)

        neighbours = self.on_gpu(model.gpu)
        if sum(m.holds_slot for m in neighbours) < self.awake_per_gpu:
            model.state = WAKING
            return Decision(Verdict.WAIT, wake=name)
        # Make room only as many times as models are asking for it, so that a burst for one
        # sleeping model puts one other model to sleep, not one per request.
        freeing = sum(m.state == SLEEPING for m in neighbours)
        demand = sum(self._wants_slot(m) and m.waiting > 0 for m in neighbours)
        victim = self._least_recently_used_idle(neighbours)
        if freeing < demand and victim is not None:
            victim.state = SLEEPING
            return Decision(Verdict.WAIT, sleep=victim.name)
        return Decision(Verdict.WAIT)

    def why_waiting(self, name: str) -> str:
        """Why a request for `name` is still waiting, for the error its caller gets."""
        model = self.models[name]
        if model.state == STARTING:
            return model.error or "its server has not answered /health with 200 yet"
        if model.state == WAKING:
            return "its wake has not finished"
        if model.state == FAILED and self.clock() < model.failed_until:
            return model.error
        holders = [f"{m.name} ({m.state})" for m in self.on_gpu(model.gpu) if m.holds_slot]
        return (
            f"GPU {model.gpu} has no room ({self.awake_per_gpu} awake at most) and the models "
            f"holding its slots stayed busy: {', '.join(holders) or 'none'}"
        )

    # --- what the service reports back ------------------------------------------------------

    def seen(self, name: str, sleeping: bool) -> None:
        """The server answered /health with 200 and /is_sleeping with `sleeping`."""
        model = self.models[name]
        model.state, model.error = (ASLEEP if sleeping else AWAKE), ""
        model.healthy_at = self.clock()

    def not_ready(self, name: str, reason: str) -> None:
        """A starting server answered, but not as it should; it stays `starting`."""
        self.models[name].error = reason

    def woke(self, name: str) -> None:
        model = self.models[name]
        model.state, model.error = AWAKE, ""

    def wake_failed(self, name: str, reason: str) -> None:
        self._fail(name, reason)

    def slept(self, name: str) -> None:
        self.models[name].state = ASLEEP

    def sleep_failed(self, name: str, reason: str) -> None:
        # Whether it still holds its memory is unknown; it is counted as holding none, like a
        # failed wake, so that the GPU goes on serving the others.
        self._fail(name, reason)

    def trim(self) -> list[str]:
        """At start-up every server comes up awake. Put to sleep (now `sleeping`) every idle
        model of an earlier wave than a model of its GPU still starting, and, while a GPU has
        more awake models than it may, idle ones: the most recently healthy first (the ones
        healthy earlier may already be answering, and their caches are warm)."""
        chosen = []
        for gpu in sorted({m.gpu for m in self.models.values()}):
            neighbours = self.on_gpu(gpu)
            to_come = max((m.wave for m in neighbours if m.state == STARTING), default=-1)
            for model in neighbours:
                if model.idle and model.wave < to_come:
                    model.state = SLEEPING
                    chosen.append(model.name)
            excess = sum(m.state in (AWAKE, WAKING) for m in neighbours) - self.awake_per_gpu
            idle = sorted(
                (m for m in neighbours if m.idle),
                key=lambda m: float("-inf") if m.healthy_at is None else m.healthy_at,
                reverse=True,
            )
            for model in idle[: max(excess, 0)]:
                model.state = SLEEPING
                chosen.append(model.name)
        return chosen

    # --- helpers -----------------------------------------------------------------------------

    def _wants_slot(self, model: Residence) -> bool:
        expired = model.state == FAILED and self.clock() >= model.failed_until
        return model.state == ASLEEP or expired

    def _fail(self, name: str, reason: str) -> None:
        model = self.models[name]
        model.state, model.error = FAILED, reason
        model.failed_until = self.clock() + self.failed_backoff_s

    @staticmethod
    def _least_recently_used_idle(models: Iterable[Residence]) -> Residence | None:
        idle = [m for m in models if m.idle]
        # Never used sorts first: a model nobody has asked for is the cheapest to put away.
        return min(
            idle, key=lambda m: float("-inf") if m.last_used is None else m.last_used, default=None
        )
