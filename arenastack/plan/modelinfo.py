"""What the planner needs to know of a model: its attention shape and its weight bytes.

Offline first. In order: a local model directory; the Hugging Face cache on this host; the
small catalog of known models in `compose/model-info/`; the hub's metadata (only when online and
allowed); nothing, in which case the manifest's `weights_gib` / `params_b` hints may still help.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from dataclasses import dataclass
from functools import cache
from math import prod
from pathlib import Path
from typing import Any

from arenastack.core.paths import MODEL_CATALOG, REPO

DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "F32": 4,
    "float16": 2,
    "half": 2,
    "F16": 2,
    "bfloat16": 2,
    "BF16": 2,
    "float8_e4m3fn": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "int8": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "I16": 2,
    "I32": 4,
    "I64": 8,
    "F64": 8,
}


@dataclass(frozen=True)
class ModelInfo:
    source: str
    num_layers: int
    kv_heads_per_layer: tuple[int, ...]
    head_dim: int
    torch_dtype: str
    max_position_embeddings: int | None
    parameters: int | None  # None when no weight files or index were found
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    # config.json's `architectures` and top-level keys: what vLLM's model registry is asked.
    architectures: tuple[str, ...] = ()
    config_keys: frozenset[str] = frozenset()

    @property
    def kv_heads_total(self) -> int:
        return sum(self.kv_heads_per_layer)


def from_config(config: dict[str, Any], parameters: int | None, source: str) -> ModelInfo:
    # Multimodal configs keep the language model's figures under text_config.
    text = config.get("text_config") or config
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    if "num_key_value_heads_per_layer" in text:
        # DeciLM varies the KV width per layer; vLLM's DeciLMForCausalLM pads every layer to the
        # widest ("PagedAttention does not work well with variable GQA"), so its cache does too.
        kv_heads = max(int(n) for n in text["num_key_value_heads_per_layer"])
    per_layer = [kv_heads] * layers
    head_dim = text.get("head_dim") or int(text["hidden_size"]) // heads
    return ModelInfo(
        source=source,
        num_layers=layers,
        kv_heads_per_layer=tuple(int(n) for n in per_layer),
        head_dim=int(head_dim),
        torch_dtype=str(text.get("torch_dtype") or config.get("torch_dtype") or "bfloat16"),
        max_position_embeddings=_derived_max_model_len(text),
        parameters=parameters,
        hidden_size=int(text["hidden_size"]),
        intermediate_size=int(text.get("intermediate_size") or 4 * int(text["hidden_size"])),
        vocab_size=int(text.get("vocab_size") or 32000),
        architectures=tuple(str(a) for a in config.get("architectures") or ()),
        config_keys=frozenset(config),
    )


def _derived_max_model_len(config: dict[str, Any]) -> int | None:
    """vLLM's default max_model_len: the position limit, stretched by RoPE scaling except for
    the kinds whose limit already includes it (su/longrope, llama3)."""
    length = config.get("max_position_embeddings")
    rope = config.get("rope_scaling") or {}
    kind = rope.get("rope_type") or rope.get("type")
    if length is None or kind in (None, "su", "longrope", "llama3", "default", "mrope"):
        return length
    if kind == "yarn":
        length = rope.get("original_max_position_embeddings", length)
    return int(length * rope.get("factor", 1))


def read_directory(directory: Path, source: str) -> ModelInfo | None:
    config_file = directory / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    return from_config(config, _parameters(directory, config), source)


def _parameters(directory: Path, config: dict[str, Any]) -> int | None:
    """Exact parameter count from safetensors headers, else from the index's byte total."""
    shards = sorted(directory.glob("*.safetensors"))
    if shards:
        return sum(_safetensors_parameters(shard) for shard in shards)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        total_size = json.loads(index.read_text())["metadata"]["total_size"]
        return int(total_size) // DTYPE_BYTES.get(str(config.get("torch_dtype")), 2)
    return None


def _safetensors_parameters(path: Path) -> int:
    # A safetensors file starts with a little-endian u64 header length and a JSON header that
    # lists every tensor's shape: the parameter count without loading a single weight.
    with path.open("rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        header = json.loads(stream.read(length))
    return sum(prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


def hf_cache_dirs(host_cache: Path | None) -> list[Path]:
    candidates = [host_cache] if host_cache else []
    if "HF_HOME" in os.environ:
        candidates.append(Path(os.environ["HF_HOME"]))
    candidates.append(Path.home() / ".cache" / "huggingface")
    return [path / "hub" for path in candidates]


def lookup(
    model: str, local_path: Path | None, host_cache: Path | None, online: bool
) -> ModelInfo | None:
    if local_path is not None:
        return read_directory(local_path, f"local directory {local_path}")
    repo_folder = "models--" + model.replace("/", "--")
    for hub_dir in hf_cache_dirs(host_cache):
        for snapshot in sorted((hub_dir / repo_folder / "snapshots").glob("*")):
            if info := read_directory(snapshot, f"Hugging Face cache {snapshot}"):
                return info
    catalog_entry = MODEL_CATALOG / model.replace("/", "--")
    if info := read_directory(catalog_entry, f"catalog {catalog_entry.relative_to(REPO)}"):
        return info
    return _from_hub(model) if online and _hub_reachable() else None


@cache
def _hub_reachable() -> bool:
    """One quick connection attempt, so an offline host is not held up by the hub's retries."""
    from urllib.parse import urlsplit

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((endpoint.hostname or "", endpoint.port or 443), timeout=3).close()
    except OSError:
        return False
    return True


def _from_hub(model: str) -> ModelInfo | None:
    try:
        from huggingface_hub import get_safetensors_metadata, hf_hub_download

        config = json.loads(Path(hf_hub_download(model, "config.json")).read_text())
        parameters: int | None
        try:
            parameters = sum(get_safetensors_metadata(model).parameter_count.values())
        except Exception:  # a repository without safetensors still has a config
            parameters = None
    except Exception:  # offline, gated without a token, or no such repository
        return None
    return from_config(config, parameters, f"hub metadata of {model}")
