#!/usr/bin/env python3
"""Residency on the lent GPU machine (no Docker there): start a rendered residency stack's model
servers in their waves behind the real residency service (python -m arenastack.residency), then
make random battle pairs through it and write what the GPU and the clients saw.

    python3 tools/gpu/run_residency.py STACK.json --label residency-1 [--battles 50] [--out DIR]

STACK.json comes from tools/gpu/stack_commands.py on a manifest with a `residency` block. A model
of an earlier wave is ready for the next once it has slept (as its compose healthcheck says); the
residency service puts it to sleep. Each battle sends one streamed chat completion to each of two
distinct models at once, as the arena does, and times the first streamed chunk (time to first
token, a wake included). GPU memory is sampled every 0.2 s throughout; each server's own memory is
read once all are up (the asleep ones show their residue). Results go to OUT/LABEL.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_stack import REPO, gpu_memory, group_of, healthy, launch, logged, write_models

SERVICE_PORT = 8200


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def slept(port: int) -> bool:
    try:
        return healthy(port) and bool(
            get_json(f"http://127.0.0.1:{port}/is_sleeping")["is_sleeping"]
        )
    except OSError:
        return False


class Sampler(threading.Thread):
    """nvidia-smi's memory.used, every 0.2 s: the peak in each phase."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[str, int] = {}
        self.phase = "start"
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            _, used = gpu_memory()
            self.peak[self.phase] = max(self.peak.get(self.phase, 0), used)
            time.sleep(0.2)


def chat(name: str, max_tokens: int) -> dict[str, Any]:
    """One streamed chat completion through the residency service: time to the first chunk and
    to the end, or the error."""
    body = {
        "model": name,
        "messages": [{"role": "user", "content": "Say something about GPUs."}],
        "max_tokens": max_tokens,
        "stream": True,
        "ignore_eos": True,
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{SERVICE_PORT}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    began = time.monotonic()
    first = None
    chunks = 0
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            for line in answer:
                if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
                    continue
                chunks += 1
                if first is None:
                    first = time.monotonic() - began
        return {
            "model": name,
            "ttft_s": first,
            "total_s": time.monotonic() - began,
            "chunks": chunks,
        }
    except OSError as error:
        detail = error.read().decode(errors="replace") if hasattr(error, "read") else ""
        return {"model": name, "error": f"{error} {detail}".strip()}


def metric_totals(text: str, name: str) -> dict[str, float]:
    found = {}
    for model, value in re.findall(rf'^{name}\{{model="([^"]+)"\}} ([0-9.e+]+)$', text, re.M):
        found[model] = float(value)
    return found


def save(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=1))


def summarise(
    result: dict[str, Any], answers: list[dict[str, Any]], sampler: Sampler, seconds: float
) -> None:
    """The battles so far: time to first token, failures, the service's counters, GPU peaks."""
    result["battles_s"] = round(seconds, 1)
    ttft = sorted(a["ttft_s"] for a in answers if a.get("ttft_s") is not None)
    result["requests"] = len(answers)
    result["failures"] = [a for a in answers if "error" in a or a.get("ttft_s") is None]
    if ttft:
        result["ttft_p50_s"] = round(statistics.median(ttft), 3)
        result["ttft_p95_s"] = round(ttft[max(0, round(0.95 * len(ttft)) - 1)], 3)
        result["ttft_max_s"] = round(ttft[-1], 3)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{SERVICE_PORT}/metrics").read().decode()
    for key in ("wakes_total", "sleeps_total", "wake_seconds_sum", "wake_failures_total"):
        result[key] = metric_totals(metrics, f"arenastack_residency_{key}")
    result["gpu_peak_mib"] = dict(sampler.peak)
    result["answers"] = answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--battles", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--tokenizer", type=Path, default=REPO / "models" / "tiny-llama-a")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--timeout", type=float, default=480)
    args = parser.parse_args()
    stack = json.loads(args.stack.read_text())
    resident = stack["residency"]
    servers = {s["service"]: s for s in stack["servers"]}
    write_models(servers, args.tokenizer)
    config = {k: v for k, v in resident.items() if k != "plan"}
    config_file = args.out / f"{args.label}-residency.json"
    config_file.write_text(json.dumps(config, indent=1))
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    base_env["PYTHONPATH"] = f"{REPO}:{base_env.get('PYTHONPATH', '')}"
    began = time.monotonic()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    service_log = (args.out / f"{args.label}-service.log").open("wb")
    service = subprocess.Popen(
        [sys.executable, "-m", "arenastack.residency", "--config", str(config_file),
         "--host", "127.0.0.1", "--port", str(SERVICE_PORT)],
        env=base_env, stdout=service_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    sampler = Sampler()
    sampler.start()
    launched: dict[str, float] = {}
    ready: dict[str, float] = {}
    failed: dict[str, str] = {}

    def start(name: str) -> None:
        processes[name] = launch(servers[name], args.out / f"{args.label}-{name}.log", base_env)
        launched[name] = time.monotonic() - began
        print(f"[{launched[name]:6.1f}s] started {name}", flush=True)

    result: dict[str, Any] = {"label": args.label, "ref": stack["ref"], "plan": resident["plan"]}
    try:
        while len(ready) + len(failed) < len(servers):
            now = time.monotonic() - began
            for name, spec in servers.items():
                if name not in processes and all(w in ready for w in spec["after"]):
                    start(name)
            for name, process in processes.items():
                if name in ready or name in failed:
                    continue
                if process.poll() is not None:
                    failed[name] = f"exited with status {process.returncode}"
                    print(f"[{now:6.1f}s] {name} EXITED", flush=True)
                    continue
                port = servers[name]["port"]
                done = slept(port) if servers[name]["ready"] == "slept" else healthy(port)
                if done:
                    ready[name] = now - launched[name]
                    print(f"[{now:6.1f}s] {name} ready ({servers[name]['ready']})", flush=True)
            if now > args.timeout or failed:
                break
            if service.poll() is not None:
                failed["residency service"] = f"exited with status {service.returncode}"
                break
            time.sleep(0.5)
        result["all_ready_s"] = round(time.monotonic() - began, 1)
        result["ready_after_s"] = {n: round(s, 1) for n, s in ready.items()}
        result["failed_to_start"] = failed
        # Let the service see the last ones up (it polls /health every second).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = get_json(f"http://127.0.0.1:{SERVICE_PORT}/residency")["models"]
            if all(s["state"] in ("awake", "asleep") for s in states.values()):
                break
            time.sleep(0.5)
        result["states_when_up"] = {n: s["state"] for n, s in states.items()}
        per_pid, used = gpu_memory()
        result["gpu_used_when_up_mib"] = used
        result["process_mib_when_up"] = {
            name: sum(m for pid, m in per_pid.items() if group_of(pid) == process.pid)
            for name, process in processes.items()
        }
        result["logged"] = {n: logged(args.out / f"{args.label}-{n}.log") for n in servers}
        sampler.phase = "battles"
        chooser = random.Random(args.seed)
        names = {
            n: s["argv"][s["argv"].index("--served-model-name") + 1] for n, s in servers.items()
        }
        answers: list[dict[str, Any]] = []
        battle_began = time.monotonic()
        save(args.out / f"{args.label}.json", result)  # a run cut short still leaves this
        for battle in range(args.battles):
            pair = chooser.sample(sorted(names), 2)
            with ThreadPoolExecutor(2) as pool:
                replies = list(pool.map(lambda n: chat(names[n], args.max_tokens), pair))
            for reply in replies:
                reply["battle"] = battle
            answers.extend(replies)
            summarise(result, answers, sampler, time.monotonic() - battle_began)
            if battle % 10 == 9:
                save(args.out / f"{args.label}.json", result)
        sampler.done.set()
        sampler.join()
        summarise(result, answers, sampler, time.monotonic() - battle_began)
    finally:
        sampler.done.set()
        save(args.out / f"{args.label}.json", result)
        summary = {k: v for k, v in result.items() if k not in ("answers", "logged")}
        print(json.dumps(summary, indent=1), flush=True)
        for process in [*processes.values(), service]:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGTERM)
        time.sleep(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
