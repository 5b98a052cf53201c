"""The flags the renderer writes exist in the vLLM version the image runs.

The CPU dialect is proven by the live stack starting. For the CUDA image, which cannot be built
here, the rendered flags are checked against the argument list of that vLLM version's own source:
its sdist from PyPI (cached in ~/.cache/arenastack/vllm-sdist), parsed with `ast`:
- `add_argument("--flag", ...)` string literals (engine flags in every version, server flags up
  to v0.9);
- fields of the `*FrontendArgs` dataclasses, which become `--field-name` flags from v0.10.
"""

from __future__ import annotations

import ast
import io
import json
import tarfile
import urllib.request
from pathlib import Path

import pytest
import yaml

from arenastack.manifest import DEFAULT_VLLM_REF
from arenastack.plan.dialect import cuda_dialect
from arenastack.render.pipeline import prepare
from tests.cases import CASES, render

CACHE = Path.home() / ".cache" / "arenastack" / "vllm-sdist"


def sdist_sources(version: str) -> dict[str, str]:
    """The argument-defining modules of vLLM `version`: path → source text."""
    cached = CACHE / f"vllm-{version}-args.json"
    if cached.exists():
        sources: dict[str, str] = json.loads(cached.read_text())
        return sources
    # PyPI's simple index in JSON (PEP 691), the API pip itself uses.
    index = urllib.request.Request(
        "https://pypi.org/simple/vllm/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(index, timeout=60) as response:
        files = json.load(response)["files"]
    urls = [f["url"] for f in files if f["filename"] == f"vllm-{version}.tar.gz"]
    assert urls, f"PyPI has no sdist of vLLM {version}"
    with urllib.request.urlopen(urls[0], timeout=300) as response:
        payload = io.BytesIO(response.read())
    sources = {}
    with tarfile.open(fileobj=payload, mode="r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.split("/", 1)[-1]
            if name == "vllm/engine/arg_utils.py" or (
                name.startswith("vllm/entrypoints/") and name.endswith("cli_args.py")
            ):
                extracted = archive.extractfile(member)
                assert extracted is not None
                sources[name] = extracted.read().decode()
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(sources))
    return sources


def known_flags(version: str) -> set[str]:
    flags: set[str] = set()
    for source in sdist_sources(version).values():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                flags |= {
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str)
                    and arg.value.startswith("-")
                }
            if isinstance(node, ast.ClassDef) and node.name.endswith("FrontendArgs"):
                flags |= {
                    "--" + item.target.id.replace("_", "-")
                    for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                }
    return flags


def rendered_flags(case_name: str) -> dict[str, set[str]]:
    case = next(c for c in CASES if c.name == case_name)
    services = yaml.safe_load(render(case))["services"]
    found = {
        name: {arg.split("=")[0] for arg in service["command"] if arg.startswith("--")}
        for name, service in services.items()
        if service["command"][:2] == ["vllm", "serve"]
    }
    # Comparing nothing would pass: every model of the case must have been found.
    models = {m.service for m in prepare(case.manifest, case.gpus).plan.models}
    assert models and set(found) == models, (case_name, sorted(found), sorted(models))
    return found


def test_parser_finds_the_flags_of_the_pinned_version() -> None:
    flags = known_flags(DEFAULT_VLLM_REF.lstrip("v"))
    assert {"--gpu-memory-utilization", "--port", "--device", "--disable-log-requests"} <= flags
    assert "--enable-log-requests" not in flags


@pytest.mark.parametrize("case_name", ["seed", "two-gpus", "tensor-parallel", "planned"])
def test_cuda_flags_exist_in_the_pinned_vllm(case_name: str) -> None:
    flags = known_flags(DEFAULT_VLLM_REF.lstrip("v"))
    for service, used in rendered_flags(case_name).items():
        assert used <= flags, (
            f"{service}: {sorted(used - flags)} unknown to vLLM {DEFAULT_VLLM_REF}"
        )


def test_current_dialect_flags_exist_in_current_vllm() -> None:
    version = "0.33.0"
    assert cuda_dialect(f"v{version}").label == f"v{version}"
    flags = known_flags(version)
    assert "--device" not in flags and "--disable-log-requests" not in flags
    for service, used in rendered_flags("current-vllm").items():
        assert used <= flags, f"{service}: {sorted(used - flags)} unknown to vLLM {version}"
