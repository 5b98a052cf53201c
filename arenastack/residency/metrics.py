"""The service's Prometheus metrics, in a registry of its own per app (so that two apps in one
process, as in the tests, count apart). Counters and the histogram are updated when a wake or
a sleep ends; the gauges are read from the policy when /metrics is asked."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from arenastack.residency.policy import AWAKE, Residence

PREFIX = "arenastack_residency"
# The classic text format: what generate_latest writes for names like these, and what every
# Prometheus reads (prometheus_client 0.26's CONTENT_TYPE_LATEST says version=1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A level-1 wake took 0.41 s on an H200 (FACTS.md); a first sleep of a server 16 s.
WAKE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self, models: Iterable[tuple[str, str]]) -> None:
        """`models`: (name, gpu) of each model, so every series exists from the start at 0."""
        self.registry = CollectorRegistry()
        self.wakes = Counter(
            f"{PREFIX}_wakes", "Wakes that succeeded.", ["model"], registry=self.registry
        )
        self.sleeps = Counter(
            f"{PREFIX}_sleeps", "Sleeps that succeeded.", ["model"], registry=self.registry
        )
        self.wake_failures = Counter(
            f"{PREFIX}_wake_failures",
            "Wakes that failed or timed out.",
            ["model"],
            registry=self.registry,
        )
        self.wake_seconds = Histogram(
            f"{PREFIX}_wake_seconds",
            "Time from POST /wake_up to /is_sleeping saying false.",
            ["model"],
            buckets=WAKE_BUCKETS,
            registry=self.registry,
        )
        self.awake = Gauge(
            f"{PREFIX}_awake",
            "1 while the model is awake.",
            ["model", "gpu"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            f"{PREFIX}_in_flight", "Requests being forwarded.", ["model"], registry=self.registry
        )
        for name, gpu in models:
            for metric in (self.wakes, self.sleeps, self.wake_failures, self.wake_seconds):
                metric.labels(model=name)
            self.awake.labels(model=name, gpu=gpu)
            self.in_flight.labels(model=name)

    def exposition(self, residences: Iterable[Residence]) -> bytes:
        for model in residences:
            self.awake.labels(model=model.name, gpu=model.gpu).set(model.state == AWAKE)
            self.in_flight.labels(model=model.name).set(model.in_flight)
        return generate_latest(self.registry)
