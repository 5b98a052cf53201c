"""Run inside the pods of the Kubernetes render (mounted from a ConfigMap beside fetch_models.py).

    python3 k8s_pod.py fetch REPO...            the fetch-models Job: download, then mark each
    python3 k8s_pod.py wait [--fetched REPO]... [--healthy URL]...
                                                an init container: return once every REPO is
                                                marked and every URL answers 200

Kubernetes has no `depends_on`: a pod cannot wait for a Job or for another pod's readiness, so
init containers poll. The mark is written only after a repository's download finished; a
half-downloaded snapshot is never taken for a complete one. Standard library only (plus
huggingface_hub in `fetch`), so it runs in the vLLM and the FastChat images alike.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

# Once a second: the next model of a start-up chain starts within about a second of its
# neighbour's first healthy answer (as the compose healthcheck's start_interval does). The log
# says what is awaited when that changes, and every SAY_EVERY polls.
POLL_SECONDS = 1
SAY_EVERY = 30


def mark(repo: str) -> Path:
    home = Path(os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")))
    return home / "arenastack-fetched" / ("models--" + repo.replace("/", "--"))


def fetch(repos: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fetch_models  # mounted beside this file

    for repo in repos:  # each marked as soon as it is complete: its model may start
        fetch_models.main([repo])
        mark(repo).parent.mkdir(parents=True, exist_ok=True)
        mark(repo).write_text("fetched\n", encoding="utf-8")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait(arguments: list[str]) -> None:
    pending = list(zip(arguments[::2], arguments[1::2], strict=True))
    said: list[tuple[str, str]] = []
    polls = 0
    while pending:
        pending = [
            (kind, what)
            for kind, what in pending
            if not (mark(what).is_file() if kind == "--fetched" else healthy(what))
        ]
        if pending:
            if pending != said or polls % SAY_EVERY == 0:
                print("waiting for " + ", ".join(what for _, what in pending), flush=True)
                said = pending
            polls += 1
            time.sleep(POLL_SECONDS)
    print("ready", flush=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["fetch"]:
        fetch(argv[1:])
    elif argv[:1] == ["wait"]:
        wait(argv[1:])
    else:
        raise SystemExit(__doc__)


def source() -> str:
    return Path(__file__).read_text(encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
