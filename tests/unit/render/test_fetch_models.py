"""What the fetch-models service downloads: what vLLM loads, not every file of the repository."""

from __future__ import annotations

from fnmatch import fnmatch

from arenastack.render.fetch_models import ignore_patterns


def skipped(files: list[str]) -> list[str]:
    patterns = ignore_patterns(files)
    return [f for f in files if any(fnmatch(f, p) for p in patterns)]


def test_safetensors_repositories_skip_other_weight_formats() -> None:
    files = [
        "config.json", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
        "pytorch_model-00001-of-00002.bin", "original/consolidated.00.pth", "gemma-7b-it.gguf",
        "tokenizer.json", "modeling_phi3.py",
    ]  # fmt: skip
    assert skipped(files) == [
        "pytorch_model-00001-of-00002.bin", "original/consolidated.00.pth", "gemma-7b-it.gguf"
    ]  # fmt: skip


def test_bin_only_repositories_keep_their_weights() -> None:
    files = ["config.json", "pytorch_model.bin", "tokenizer.model"]
    assert skipped(files) == []
