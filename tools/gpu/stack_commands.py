#!/usr/bin/env python3
"""The model servers of a rendered manifest, as tools/gpu/run_stack.py starts them on the lent GPU
machine (no Docker there): each server's vLLM arguments and environment exactly as the compose file
has them, what it waits for, and the plan's figures to compare with what the GPU shows.

    python tools/gpu/stack_commands.py MANIFEST --gpus 1x140.4@9.0 [--ref v0.24.0] > stack.json

`--ref` renders the manifest for another vLLM ref than its own (the lent machine runs vLLM 0.24.0
from its wheel). Only what has to change to run outside a container is changed: the model is the
catalog's config.json with dummy weights (`--load-format dummy`: the same bytes, no download), each
server gets a port of its own on 127.0.0.1, and flags vLLM 0.24 no longer has are dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from arenastack.core.paths import MODEL_CATALOG, REPO
from arenastack.core.services import VLLM_PORT
from arenastack.plan.planner import resident_bytes
from arenastack.render import residency
from arenastack.render.pipeline import compose_text, prepare

# Flags the renderer writes for older refs that vLLM 0.24 rejects.
GONE_IN_0_24 = ("--disable-log-requests",)
FIRST_PORT = 8101


def server(name: str, service: dict[str, Any], model: str, port: int) -> dict[str, Any]:
    command = list(service["command"])
    launcher = (
        3 if command[:2] == ["vllm", "serve"] else 5
    )  # vllm serve M | python3 -m ... --model M
    argv = ["--model", f"/tmp/m/{name}", *command[launcher:]]
    argv = [a for a in argv if a not in GONE_IN_0_24]
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv += ["--load-format", "dummy"]
    environment = {
        key: value
        for key, value in service["environment"].items()
        if value is not None and not key.startswith("HF_")
    }
    waits = [s for s in service.get("depends_on", {}) if s != "fetch-models"]
    # A model of an earlier residency wave is ready for the next wave once it has slept.
    ready = "slept" if residency.HAS_SLEPT in service["healthcheck"]["test"] else "healthy"
    catalog = MODEL_CATALOG / model.replace("/", "--") / "config.json"
    return {
        "service": name,
        "config": str(catalog.relative_to(REPO)),
        "argv": argv,
        "env": environment,
        "after": waits,
        "ready": ready,
        "port": port,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--gpus", required=True)
    parser.add_argument("--ref", help="render for this vLLM ref instead of the manifest's")
    parser.add_argument("--host-memory", type=float, help="the GPU machine's memory, GiB")
    args = parser.parse_args()
    data = yaml.safe_load(args.manifest.read_text())
    if args.ref:
        data.setdefault("images", {}).setdefault("vllm", {})["vllm_ref"] = args.ref
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / args.manifest.name
        manifest.write_text(yaml.safe_dump(data, sort_keys=False))
        prepared = prepare(manifest, args.gpus, host_memory_gib=args.host_memory)
        document = yaml.safe_load(compose_text(prepared, Path(folder) / "c.yml"))
    servers = []
    for index, entry in enumerate(prepared.plan.entries):
        name = entry.model.service
        spec = server(name, document["services"][name], entry.model.model, FIRST_PORT + index)
        spec["plan"] = {
            "sizing": entry.sizing,
            "fraction": entry.model.gpu_memory_utilization,
            "kv_tokens": entry.kv_tokens,
            "kv_cache_bytes": entry.kv_cache_bytes,
            "footprint_bytes": entry.footprint_bytes,
            "weights_bytes": entry.weights_bytes,
            "overhead_bytes": entry.overhead_bytes,
        }
        servers.append(spec)
    assert all(s["argv"].count("--port") == 1 for s in servers), "one port per server"
    resident = None
    if "residency" in document.get("configs", {}):
        # The residency service's config, its servers at their ports here.
        resident = json.loads(document["configs"]["residency"]["content"])
        for spec in servers:
            resident["models"][spec["service"]]["url"] = f"http://127.0.0.1:{spec['port']}"
        gpu_budget = prepared.manifest.planner.gpu_budget
        usable = prepared.plan.entries[0].gpu_memory_bytes or 0
        awake = prepared.manifest.residency.awake_per_gpu if prepared.manifest.residency else None
        resident["plan"] = {
            "budget_bytes": int(gpu_budget * usable),
            "resident_bytes": resident_bytes(prepared.plan.entries, awake),
            "asleep_bytes": {e.model.service: e.asleep_bytes for e in prepared.plan.entries},
        }
    plan = {
        "manifest": str(args.manifest),
        "ref": prepared.dialect.label,
        "gpus": args.gpus,
        "together": sorted(prepared.plan.together),
        "container_port": VLLM_PORT,
        "servers": servers,
        "residency": resident,
    }
    json.dump(plan, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
