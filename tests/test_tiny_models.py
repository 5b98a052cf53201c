"""The tiny models of the live tests are real Hugging Face models, and deterministic."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def digest(folder: Path) -> str:
    hasher = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            hasher.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return hasher.hexdigest()


def make(out: Path, *args: str) -> None:
    script = REPO / "tools" / "make_tiny_models.py"
    subprocess.run([sys.executable, str(script), str(out), *args], check=True, capture_output=True)


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    make(tmp_path / "one")
    make(tmp_path / "two")
    make(tmp_path / "seven", "--seed", "7")
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    assert digest(tmp_path / "one") != digest(tmp_path / "seven")


def test_each_model_is_a_loadable_hugging_face_model(tiny_models: Path) -> None:
    from tokenizers import Tokenizer

    for name in ("tiny-llama-a", "tiny-llama-b", "tiny-qwen2"):
        folder = tiny_models / name
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"][0] in ("LlamaForCausalLM", "Qwen2ForCausalLM")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        assert tokenizer.get_vocab_size() == config["vocab_size"]
        template = json.loads((folder / "tokenizer_config.json").read_text())["chat_template"]
        assert "im_start" in template
        assert (folder / "model.safetensors").stat().st_size < 5 * 2**20
