"""vLLM's Prometheus metrics: their names in the version a server runs, and reading `/metrics`.

vLLM renamed two metrics the dashboard and `status` use (read in the PyPI sdists'
`vllm/v1/metrics/loggers.py` and `vllm/engine/metrics.py`):

- KV-cache usage: `vllm:gpu_cache_usage_perc` in every version up to 0.9.1 and in the V0
  engine; the V1 engine adds `vllm:kv_cache_usage_perc` in 0.9.2, hides the old name in 0.11 and
  drops it in 0.12. The renderer runs 0.8.0–0.9.1 on the V0 engine (dialect.environment).
- Inter-token latency: `vllm:time_per_output_token_seconds` up to 0.10.1;
  `vllm:inter_token_latency_seconds` from 0.10.2 (both engines), the old name hidden in 0.12 and
  gone in 0.13.

Counters are exported with `_total` in every version (prometheus_client appends it to V1's
`vllm:num_preemptions`, `vllm:prompt_tokens`, `vllm:generation_tokens`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arenastack.plan.dialect import Version

KV_CACHE_RENAMED = (0, 9, 2)
INTER_TOKEN_RENAMED = (0, 10, 2)


@dataclass(frozen=True)
class MetricNames:
    """The metric names one vLLM version exports; histograms by their base name."""

    kv_cache_usage: str
    inter_token_latency: str
    time_to_first_token: str = "vllm:time_to_first_token_seconds"
    running: str = "vllm:num_requests_running"
    waiting: str = "vllm:num_requests_waiting"
    prompt_tokens: str = "vllm:prompt_tokens_total"
    generation_tokens: str = "vllm:generation_tokens_total"
    preemptions: str = "vllm:num_preemptions_total"

    @property
    def label(self) -> str:
        return "current" if self.kv_cache_usage == "vllm:kv_cache_usage_perc" else "legacy"


def metric_names(version: Version) -> MetricNames:
    return MetricNames(
        kv_cache_usage=(
            "vllm:kv_cache_usage_perc"
            if version >= KV_CACHE_RENAMED
            else "vllm:gpu_cache_usage_perc"
        ),
        inter_token_latency=(
            "vllm:inter_token_latency_seconds"
            if version >= INTER_TOKEN_RENAMED
            else "vllm:time_per_output_token_seconds"
        ),
    )


# --- the text exposition format ----------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition; comments and malformed lines are skipped."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if not match:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        pairs = tuple(
            (key, raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for key, raw in _LABEL.findall(labels or "")
        )
        samples.append(Sample(name, pairs, number))
    return samples


def total(samples: Iterable[Sample], name: str) -> float | None:
    """Sum of every series of `name` (engines, models), or None when the server exports none."""
    values = [s.value for s in samples if s.name == name]
    return sum(values) if values else None


def highest(samples: Iterable[Sample], name: str) -> float | None:
    values = [s.value for s in samples if s.name == name]
    return max(values) if values else None


def buckets(samples: Iterable[Sample], histogram: str) -> dict[float, float]:
    """Cumulative counts by upper bound, summed over series."""
    counts: dict[float, float] = {}
    for sample in samples:
        if sample.name == f"{histogram}_bucket":
            bound = sample.label("le")
            if bound is not None:
                upper = math.inf if bound == "+Inf" else float(bound)
                counts[upper] = counts.get(upper, 0.0) + sample.value
    return counts


def quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """Prometheus's histogram_quantile: linear within the bucket the rank falls in; None without
    observations. A rank in the +Inf bucket returns the highest finite bound."""
    bounds = sorted(cumulative)
    if not bounds or bounds[-1] != math.inf:
        return None
    count = cumulative[math.inf]
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for upper in bounds:
        seen = cumulative[upper]
        if seen >= rank:
            if upper == math.inf:
                return lower
            if seen == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (seen - below)
        lower, below = upper, seen
    return None
