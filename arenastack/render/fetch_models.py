"""Download hub models into the shared Hugging Face cache before any vLLM server starts.

This file runs inside the vLLM image as the `fetch-models` service (compose mounts it as a
config): `python3 fetch_models.py org/model-a org/model-b`. It needs only huggingface_hub.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Formats vLLM does not load, and the original checkpoints some repositories carry beside the
# Hugging Face ones (Llama 3's original/ holds another 16 GB).
NEVER_NEEDED = [
    "original/*",
    "*.gguf",
    "*.pth",
    "*.onnx",
    "*.onnx_data",
    "onnx/*",
    "*.msgpack",
    "*.h5",
    "*.ot",
    "*.tflite",
    "coreml/*",
    "*.mlmodel",
]


def ignore_patterns(files: list[str]) -> list[str]:
    """vLLM prefers safetensors; with them present, the .bin/.pt copies are dead weight."""
    patterns = list(NEVER_NEEDED)
    if any(name.endswith(".safetensors") for name in files):
        patterns += ["*.bin", "*.pt"]
    return patterns


def fetch(repo: str) -> str:
    from huggingface_hub import list_repo_files, snapshot_download

    try:
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
    except ImportError:  # huggingface_hub < 0.24, as in 2024-era vLLM images
        from huggingface_hub.utils import (  # type: ignore[attr-defined]
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
        )

    try:
        files = list_repo_files(repo)
    except GatedRepoError:
        raise SystemExit(
            f"{repo} is gated: accept its licence on huggingface.co and put HF_TOKEN in .env"
        ) from None
    except RepositoryNotFoundError:
        raise SystemExit(f"{repo} does not exist on the hub (or HF_TOKEN may not see it)") from None
    except (HfHubHTTPError, OSError) as error:
        # Offline, or the hub is down: what the cache already holds will do.
        print(f"{repo}: hub unreachable ({error}); using the cache", flush=True)
        return str(snapshot_download(repo, local_files_only=True))
    return str(snapshot_download(repo, ignore_patterns=ignore_patterns(files)))


def main(repos: list[str]) -> None:
    for repo in repos:
        print(f"fetching {repo}", flush=True)
        print(f"{repo} ready in {fetch(repo)}", flush=True)
    print(f"all {len(repos)} hub model(s) are in the cache", flush=True)


def source() -> str:
    return Path(__file__).read_text(encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
