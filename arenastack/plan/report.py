"""Show a memory plan: a table per GPU for people, JSON for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from arenastack.plan.planner import GIB, ModelPlan, Plan, awake_share_bytes, resident_bytes


def as_json(plan: Plan) -> dict[str, Any]:
    gpus = [
        {
            "index": index,
            "name": gpu.name,
            "memory_gib": gpu.memory_gib,
            "compute_capability": gpu.compute_capability,
            "fraction_total": round(plan.fraction_total(index), 4),
            "headroom": round(1 - plan.fraction_total(index), 4),
            "start": "together" if index in plan.together else "one after another",
            "footprint_bytes": _footprint_total(plan.on_gpu(index)),
            "models": [e.model.service for e in plan.on_gpu(index)],
            "residency": _residency_json(plan, index),
        }
        for index, gpu in enumerate(plan.gpus)
    ]
    return {"gpus": gpus, "models": [_model_json(entry) for entry in plan.entries]}


def _residency_json(plan: Plan, index: int) -> dict[str, Any] | None:
    entries = plan.on_gpu(index)
    if plan.awake_per_gpu is None or not plan.budget_bytes or not entries:
        return None
    share = awake_share_bytes(entries, plan.awake_per_gpu, plan.budget_bytes[index])
    return {
        "awake_per_gpu": plan.awake_per_gpu,
        "budget_bytes": plan.budget_bytes[index],
        "worst_case_bytes": sum(resident_bytes(entries, plan.awake_per_gpu).values()),
        "awake_share_bytes": share,
        "kv_tokens_at_share": {e.model.service: _kv_tokens_at(e, share) for e in entries},
    }


def _kv_tokens_at(entry: ModelPlan, share: int) -> int | None:
    """The KV tokens a model would get if it held an awake model's whole share."""
    if entry.footprint_bytes is None or not entry.kv_bytes_per_token:
        return None
    without_kv = entry.footprint_bytes - (entry.kv_cache_bytes or 0)
    return max(0, share - without_kv) // entry.kv_bytes_per_token


def _model_json(entry: ModelPlan) -> dict[str, Any]:
    model = entry.model
    fraction_needed = entry.fraction_needed
    return {
        "service": model.service,
        "model": model.model,
        "gpu": list(model.gpus) if model.gpus != "auto" else None,
        "weights_bytes": entry.weights_bytes,
        "kv_bytes_per_token": entry.kv_bytes_per_token,
        "overhead_bytes": entry.overhead_bytes,
        "tokens_needed": entry.tokens,
        "kv_tokens": entry.kv_tokens,
        "fraction_needed": None if fraction_needed is None else round(fraction_needed, 4),
        "fraction_set": model.gpu_memory_utilization,
        "kv_cache_sized_by": entry.sizing,
        "kv_cache_bytes": entry.kv_cache_bytes,
        "footprint_bytes": entry.footprint_bytes,
        "asleep_bytes": entry.asleep_bytes,
        "source": entry.info.source if entry.info else None,
    }


def _footprint_total(entries: list[ModelPlan]) -> int | None:
    """What the models of a GPU hold together, where each is sized in bytes."""
    footprints = [e.footprint_bytes for e in entries]
    return None if not footprints or None in footprints else sum(f or 0 for f in footprints)


def _gib(value: int | None) -> str:
    return "?" if value is None else f"{value / GIB:.2f} GiB"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def print_table(plan: Plan, device: str, console: Console | None = None) -> None:
    # Rich wraps at 80 columns when not writing to a terminal; the table needs more.
    console = console or Console(width=None if Console().is_terminal else 132)
    if device == "cpu":
        table = _table("CPU (KV cache = cpu_kvcache_space)", cpu=True)
        for entry in plan.entries:
            table.add_row(*_row(entry, cpu=True))
        console.print(table)
        return
    for index, gpu in enumerate(plan.gpus):
        entries = plan.on_gpu(index)
        name = f" {gpu.name}" if gpu.name else ""
        capability = gpu.compute_capability
        title = f"GPU {index}{name}: {gpu.memory_gib:.1f} GiB, compute capability {capability}"
        if not entries:
            console.print(f"{title}: no models")
            continue
        table = _table(title, cpu=False)
        for entry in entries:
            table.add_row(*_row(entry, cpu=False))
        total = plan.fraction_total(index)
        needed = [e.fraction_needed for e in entries]
        needed_total = "?" if None in needed else f"{sum(n for n in needed if n):.2f}"
        start = "start together" if index in plan.together else "start one after another"
        footprint = _footprint_total(entries)
        residency = _residency_json(plan, index)
        if residency is not None:
            awake = residency["awake_per_gpu"]
            share = residency["awake_share_bytes"]
            at_share = ", ".join(
                f"{service} {_count(tokens)}"
                for service, tokens in residency["kv_tokens_at_share"].items()
            )
            table.caption = (
                f"residency: at most {awake} of {len(entries)} awake; worst case "
                f"{residency['worst_case_bytes'] / GIB:.1f} GiB (the largest awake, the others "
                f"asleep) of a budget of {residency['budget_bytes'] / GIB:.1f} GiB\n"
                f"an awake model's share: {share / GIB:.1f} GiB, room for KV tokens: {at_share}"
            )
        elif footprint is not None:
            table.caption = (
                f"footprints: {footprint / GIB:.1f} GiB of {gpu.memory_gib:.1f} GiB   "
                f"headroom: {gpu.memory_gib - footprint / GIB:.1f} GiB   models {start}"
            )
        else:
            table.caption = (
                f"fractions needed: {needed_total}   set: {total:.2f}   "
                f"headroom: {1 - total:.2f} ({(1 - total) * gpu.memory_gib:.1f} GiB)   "
                f"models {start}"
            )
        console.print(table)
    unknown = [e for e in plan.entries if e.info is None]
    for entry in unknown:
        console.print(f"[yellow]{entry.model.service}: no config.json found; sizes unknown[/]")


def _table(title: str, cpu: bool) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("model")
    table.add_column("weights", justify="right")
    table.add_column("KV / token", justify="right")
    table.add_column("KV tokens", justify="right")
    table.add_column("tokens needed", justify="right")
    if not cpu:
        table.add_column("fraction needed", justify="right")
        table.add_column("fraction set", justify="right")
        table.add_column("KV sized by", justify="right")
        table.add_column("footprint", justify="right")
    return table


def _row(entry: ModelPlan, cpu: bool) -> list[str]:
    needed = entry.fraction_needed
    row = [
        entry.model.service,
        _gib(entry.weights_bytes),
        _count(entry.kv_bytes_per_token) + " B" if entry.kv_bytes_per_token else "?",
        _count(entry.kv_tokens),
        _count(entry.tokens),
    ]
    if not cpu:
        row += ["?" if needed is None else f"{needed:.3f}", f"{entry.model.gpu_memory_utilization}"]
        sized = {"bytes": "bytes", "elastic": "elastic pool", "fraction": "fraction"}
        footprint = "" if entry.footprint_bytes is None else _gib(entry.footprint_bytes)
        row += [sized[entry.sizing], footprint]
    return row
