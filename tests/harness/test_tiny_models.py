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


def test_no_reply_can_come_out_empty(tiny_models: Path) -> None:
    """Special tokens decode to "" and whitespace strips away, so a reply sampled from them alone
    would be empty, and a test reading it would fail on a healthy server. The final norm gives the
    hidden state an RMS of 1 in every direction; over many such states, at temperature 1, all of
    those tokens together get less than a ten-thousandth of the probability. A stock head of
    spread 0.02 gives them about their share of the vocabulary, 14/512."""
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from tools.make_tiny_models import HIDDEN, SPECIAL, silent_tokens

    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((2000, HIDDEN))
    hidden /= np.sqrt((hidden**2).mean(axis=1, keepdims=True))
    for name in ("tiny-llama-a", "tiny-llama-b", "tiny-qwen2"):
        tokenizer = Tokenizer.from_file(str(tiny_models / name / "tokenizer.json"))
        empty = silent_tokens(tokenizer)
        assert {tokenizer.token_to_id(token) for token in SPECIAL} < set(empty)
        head = load_file(str(tiny_models / name / "model.safetensors"))["lm_head.weight"]
        logits = hidden @ head.astype(np.float64).T
        weight = np.exp(logits - logits.max(axis=1, keepdims=True))
        probability = weight[:, empty].sum(axis=1) / weight.sum(axis=1)
        assert probability.max() < 1e-4, name
