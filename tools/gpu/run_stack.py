#!/usr/bin/env python3
"""Start the model servers of a rendered manifest on the lent GPU machine (no Docker there), as the
compose file starts them, and write what the GPU shows: when each became healthy, the KV tokens vLLM
logged, and each server's memory by `nvidia-smi` against the plan. Standard library only.

    python3 tools/gpu/run_stack.py STACK.json --label exact-1 [--until kv] [--burst 16] \
        [--tokenizer DIR] [--out DIR]

STACK.json comes from tools/gpu/stack_commands.py. Each server starts when the servers it waits for
(`after`, the compose file's depends_on) are healthy; `--until kv` stops each once vLLM has sized
its KV cache (for the KV-token calibration, one at a time). vLLM is found on PYTHONPATH; results
go to OUT/LABEL.json and the servers' logs to OUT/LABEL-SERVICE.log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LOGGED = {
    "kv_tokens": re.compile(r"GPU KV cache size: ([\d,]+) tokens"),
    "weights_gib": re.compile(r"Model loading took ([\d.]+) GiB"),
    "compile_s": re.compile(r"torch\.compile takes ([\d.]+) s"),
    "graphs_s": re.compile(r"Graph capturing finished in ([\d.]+) secs?"),
    "graphs_gib": re.compile(r"Graph capturing finished in [\d.]+ secs?, took ([\d.]+) GiB"),
    "available_kv_gib": re.compile(r"Available KV cache memory: ([\d.]+) GiB"),
}


def complete(path: Path) -> dict[str, Any]:
    """The catalog's config.json with what the catalog leaves out put back: Phi-3's long RoPE
    factor lists (the planner does not read them, transformers requires them), as ones, which
    changes no memory figure."""
    config: dict[str, Any] = json.loads(path.read_text())
    rope = config.get("rope_scaling") or {}
    if (rope.get("rope_type") or rope.get("type")) == "longrope" and "long_factor" not in rope:
        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        rotary = int(head_dim * config.get("partial_rotary_factor", 1.0))
        rope["long_factor"] = rope["short_factor"] = [1.0] * (rotary // 2)
    return config


def write_models(servers: dict[str, dict[str, Any]], tokenizer: Path) -> None:
    """Each server's model folder under /tmp/m: the catalog's config.json (weights are dummy)
    and a tokenizer."""
    for name, spec in servers.items():
        folder = Path("/tmp/m") / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(complete(REPO / spec["config"])))
        for tokenizer_file in tokenizer.glob("tokenizer*"):
            shutil.copy(tokenizer_file, folder / tokenizer_file.name)


def launch(spec: dict[str, Any], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A vLLM server with the rendered arguments and environment, in a process group of its
    own (stopped with os.killpg)."""
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *spec["argv"]]
    return subprocess.Popen(
        command, env={**env, **spec["env"]}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def logged(path: Path) -> dict[str, float]:
    text = path.read_text(errors="replace") if path.exists() else ""
    found = {}
    for key, pattern in LOGGED.items():
        matches = pattern.findall(text)
        if matches:
            found[key] = float(matches[-1].replace(",", ""))
    return found


def gpu_memory() -> tuple[dict[int, int], int]:
    """MiB per compute process, and in use on the GPU (nothing where there is no nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return {}, 0
    apps = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
    ).stdout
    per_pid = {}
    for line in apps.splitlines():
        pid, used = (part.strip() for part in line.split(","))
        per_pid[int(pid)] = int(used)
    used = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
    ).stdout.split()[0]
    return per_pid, int(used)


def group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def burst(port: int, name: str, requests: int, prompt_tokens: int) -> dict[str, int]:
    """`requests` completions at once, each with about `prompt_tokens` of prompt."""
    prompt = " ".join(["hello"] * prompt_tokens)
    body = json.dumps(
        {"model": name, "prompt": prompt, "max_tokens": 16, "ignore_eos": True}
    ).encode()
    results: list[bool] = []

    def one() -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                results.append(answer.status == 200)
        except OSError:
            results.append(False)

    threads = [threading.Thread(target=one) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sent": requests, "answered": sum(results)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--until", choices=("healthy", "kv"), default="healthy")
    parser.add_argument("--burst", type=int, default=0, help="concurrent requests per model")
    parser.add_argument("--prompt-tokens", type=int, default=3000)
    parser.add_argument("--tokenizer", type=Path, default=REPO / "models" / "tiny-llama-a")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--timeout", type=float, default=540)
    args = parser.parse_args()
    stack = json.loads(args.stack.read_text())
    servers = {s["service"]: s for s in stack["servers"]}
    write_models(servers, args.tokenizer)
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    launched: dict[str, float] = {}
    ready: dict[str, float] = {}
    stopped: dict[str, str] = {}
    began = time.monotonic()

    def start(name: str) -> None:
        processes[name] = launch(servers[name], args.out / f"{args.label}-{name}.log", base_env)
        launched[name] = time.monotonic() - began
        print(f"[{launched[name]:6.1f}s] started {name}", flush=True)

    def stop(name: str) -> None:
        with contextlib.suppress(OSError):
            os.killpg(processes[name].pid, signal.SIGTERM)

    measured: dict[str, Any] = {}
    try:
        while len(ready) + len(stopped) < len(servers):
            now = time.monotonic() - began
            for name, spec in servers.items():
                waits_done = all(w in ready for w in spec["after"])
                if name not in processes and name not in stopped and waits_done:
                    start(name)
                elif name not in processes and any(w in stopped for w in spec["after"]):
                    stopped[name] = "not started: what it waits for failed"
            for name, process in processes.items():
                if name in ready or name in stopped:
                    continue
                log = args.out / f"{args.label}-{name}.log"
                if process.poll() is not None:
                    stopped[name] = f"exited with status {process.returncode}"
                    print(f"[{now:6.1f}s] {name} EXITED", flush=True)
                elif args.until == "kv" and "kv_tokens" in logged(log):
                    ready[name] = now - launched[name]
                    measured[name] = logged(log)
                    stop(name)
                    processes[name].wait(timeout=60)
                    print(f"[{now:6.1f}s] {name} sized its KV cache", flush=True)
                elif args.until == "healthy" and healthy(servers[name]["port"]):
                    ready[name] = now - launched[name]
                    print(f"[{now:6.1f}s] {name} healthy after {ready[name]:.1f}s", flush=True)
            if now > args.timeout:
                break
            time.sleep(0.5)
        all_ready = time.monotonic() - began
        per_pid, used = gpu_memory()
        result: dict[str, Any] = {
            "label": args.label,
            "ref": stack["ref"],
            "together": stack["together"],
            "all_ready_s": round(all_ready, 1),
            "gpu_used_mib": used,
            "servers": {},
        }
        for name, spec in servers.items():
            started = processes.get(name)
            group = started.pid if started else None
            mib = sum(m for pid, m in per_pid.items() if group and group_of(pid) == group)
            found = measured.get(name) or logged(args.out / f"{args.label}-{name}.log")
            result["servers"][name] = {
                "launched_s": round(launched.get(name, -1), 1),
                "ready_after_s": round(ready[name], 1) if name in ready else None,
                "failed": stopped.get(name),
                "process_mib": mib if args.until == "healthy" else None,
                "logged": found,
                "plan": spec["plan"],
            }
        if args.burst and args.until == "healthy":
            for name, spec in servers.items():
                if name in ready:
                    served = spec["argv"][spec["argv"].index("--served-model-name") + 1]
                    result["servers"][name]["burst"] = burst(
                        spec["port"], served, args.burst, args.prompt_tokens
                    )
            per_pid, used = gpu_memory()
            result["gpu_used_after_burst_mib"] = used
        (args.out / f"{args.label}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1), flush=True)
    finally:
        for name in processes:
            stop(name)
        time.sleep(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
