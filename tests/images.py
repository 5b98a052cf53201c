"""The images that tests run, built here from the recipes of rendered compose files, never pulled.

Sending the multi-GB build contexts to the engine takes minutes even when every layer is cached,
so an image is rebuilt only when it is missing or its recipe changed since it was last built:
which recipe each image was built from is kept in ~/.cache/arenastack/built-images.json. The live
stack (tests/live/conftest.py) and vLLM's own parser (tests/heavy/test_vllm_parser.py) both build
through `build_stale_images`, so neither rebuilds what the other built.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import NoReturn

import pytest
import yaml
from python_on_whales import DockerClient, DockerException

BASE_IMAGE = "arenastack/base:bookworm"
BUILT = Path.home() / ".cache" / "arenastack" / "built-images.json"


def recipes(compose_file: Path) -> dict[str, tuple[str, str]]:
    """Image tag → (a service that builds it, digest of what it is built from: build args, the
    Dockerfile and every file of the context that Docker sends, except the wheelhouse, whose
    content follows from the hashed requirements files)."""
    document = yaml.safe_load(compose_file.read_text())
    found = {}
    for name, service in document["services"].items():
        if "build" not in service:
            continue
        build = service["build"]
        context = (compose_file.parent / build["context"]).resolve()
        digest = hashlib.sha256(json.dumps(build["args"], sort_keys=True).encode())
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        for path in sorted({*sent_files(context), dockerfile}):
            relative = path.relative_to(context)
            if "wheels" not in relative.parts[:-1]:
                digest.update(str(relative).encode() + b"\0" + path.read_bytes())
        found[service["image"]] = (name, digest.hexdigest())
    return found


def _glob(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker matches it: `*` and `?` within one path element, `**`
    across elements."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] in "*?":
            regex, i = regex + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + r"\Z")


def sent_files(context: Path) -> list[Path]:
    """The files of a build context that Docker sends to the engine: its .dockerignore applied
    as Docker applies it (the last matching pattern wins, `!` lets a path through again, a path
    is excluded with its folder), plus the .dockerignore itself."""
    ignore = context / ".dockerignore"
    rules: list[tuple[bool, re.Pattern[str], str]] = []
    if ignore.exists():
        for line in ignore.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                pattern = line.removeprefix("!").strip("/")
                rules.append((line.startswith("!"), _glob(pattern), pattern))

    def excluded(relative: str) -> bool:
        parents = [relative[:i] for i, c in enumerate(relative) if c == "/"] + [relative]
        verdict = False
        for negated, regex, _ in rules:
            if any(regex.match(p) for p in parents):
                verdict = not negated
        return verdict

    found = [ignore] if ignore.exists() else []
    for folder, subfolders, files in os.walk(context):
        base = Path(folder).relative_to(context).as_posix().removeprefix(".").lstrip("/")
        prefix = f"{base}/" if base else ""
        # As Docker does: an excluded folder is not walked unless a `!` pattern reaches into it.
        subfolders[:] = sorted(
            s
            for s in subfolders
            if not excluded(prefix + s)
            or any(neg and p.startswith(f"{prefix}{s}/") for neg, _, p in rules)
        )
        found += [Path(folder) / f for f in files if not excluded(prefix + f)]
    return found


def build_stale_images(compose_file: Path, tags: Collection[str] | None = None) -> list[str]:
    """Builds (with `docker compose build`) every image of the compose file, or those of `tags`,
    that is missing or whose recipe changed; returns the tags it built."""
    docker = DockerClient(compose_files=[compose_file])
    wanted = recipes(compose_file)
    if tags is not None:
        unknown = set(tags) - set(wanted)
        assert not unknown, f"{compose_file} builds none of {sorted(unknown)}"
        wanted = {tag: wanted[tag] for tag in tags}
    BUILT.parent.mkdir(parents=True, exist_ok=True)
    with BUILT.with_suffix(".lock").open("w") as lock:
        # Another run on this host building the same images: wait for it, then look again,
        # rather than build them twice at once (twice the time, and twice the disk).
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = json.loads(BUILT.read_text()) if BUILT.exists() else {}
        stale = {
            tag: recipe
            for tag, recipe in wanted.items()
            if built.get(tag) != recipe[1] or not docker.image.exists(tag)
        }
        if stale:
            docker.compose.build(services=[service for service, _ in stale.values()])
            built |= {tag: digest for tag, (_, digest) in stale.items()}
            BUILT.write_text(json.dumps(built, indent=2) + "\n")
    return sorted(stale)


def why_images_cannot_be_built(docker: DockerClient) -> str | None:
    """What is missing to build and run the images here, or None."""
    try:
        docker.system.info()
    except (DockerException, OSError) as error:
        return f"no Docker engine answers `docker info` ({str(error).strip()[:200]})"
    try:
        docker.compose.version()
    except DockerException:
        return "`docker compose` (the v2 plugin) is missing: run tools/bootstrap"
    if not docker.image.exists(BASE_IMAGE):
        return f"the base image {BASE_IMAGE} is missing: run tools/bootstrap"
    return None


def on_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skips the test where it cannot run, and fails it on CI, where everything must run."""
    if on_ci():
        pytest.fail(f"CANNOT RUN ON CI: {reason}", pytrace=False)
    pytest.skip(reason)
