"""Write tiny random-weight causal LMs in Hugging Face layout, for tests that serve real models
without downloading any.

    python tools/make_tiny_models.py OUT_DIR [--seed N]

Writes OUT_DIR/tiny-llama-a, OUT_DIR/tiny-llama-b (LlamaForCausalLM) and OUT_DIR/tiny-qwen2
(Qwen2ForCausalLM): hidden 128, 2 layers, 2 attention heads, 1 KV head, head_dim 64 (vLLM's CPU
attention rejects head_dim 16), float32 weights (~1.7 MB) served as bfloat16, and one byte-level
BPE tokenizer trained here on the text below, with a ChatML chat template. The same seed gives
byte-identical files; each model adds its own offset to the seed, so their outputs differ. No
reply comes out empty: tokens that decode to nothing visible are never sampled (output_head).
Needs numpy, safetensors and tokenizers; no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HIDDEN = 128
INTERMEDIATE = 256
LAYERS = 2
HEADS = 2
KV_HEADS = 1
HEAD_DIM = 64
MAX_POSITIONS = 2048
VOCAB_TARGET = 512

BOS, EOS, PAD, IM_START = "<|endoftext|>", "<|im_end|>", "<|pad|>", "<|im_start|>"
SPECIAL = [BOS, EOS, PAD, IM_START]
HEAD_SCALE = 0.5  # lm_head's spread; see output_head
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. A model arena shows two anonymous answers side by side,
and people vote for the better one. Each server loads its weights, reserves memory for the key and
value cache, and answers requests over an OpenAI compatible interface. Hello! How are you today?
I am fine, thank you. What is the capital of France? Paris is the capital of France. Write a short
poem about the sea: waves roll in, waves roll out, the gulls cry and the wind sings. Numbers: 0 1 2
3 4 5 6 7 8 9 10 100 1000. Code: def add(a, b): return a + b. The user asked a question and the
assistant gave an answer. Tokens, models, layers, heads, vectors, matrices, and gradients.
"""
MODELS = {  # name: (architecture, model_type, seed offset)
    "tiny-llama-a": ("LlamaForCausalLM", "llama", 0),
    "tiny-llama-b": ("LlamaForCausalLM", "llama", 1),
    "tiny-qwen2": ("Qwen2ForCausalLM", "qwen2", 2),
}


def train_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines() * 4, trainer=trainer)
    return tokenizer


def weights(model_type: str, vocab: int, seed: int, silent: list[int]) -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype("<f4")

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype="<f4")

    tensors = {"model.embed_tokens.weight": normal(vocab, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors |= {
            p + "input_layernorm.weight": ones(HIDDEN),
            p + "self_attn.q_proj.weight": normal(HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.k_proj.weight": normal(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.v_proj.weight": normal(KV_HEADS * HEAD_DIM, HIDDEN),
            p + "self_attn.o_proj.weight": normal(HIDDEN, HEADS * HEAD_DIM),
            p + "post_attention_layernorm.weight": ones(HIDDEN),
            p + "mlp.gate_proj.weight": normal(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": normal(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": normal(HIDDEN, INTERMEDIATE),
        }
        if model_type == "qwen2":  # Qwen2 has biases on q, k and v.
            tensors |= {
                p + "self_attn.q_proj.bias": normal(HEADS * HEAD_DIM),
                p + "self_attn.k_proj.bias": normal(KV_HEADS * HEAD_DIM),
                p + "self_attn.v_proj.bias": normal(KV_HEADS * HEAD_DIM),
            }
    tensors |= {
        "model.norm.weight": ones(HIDDEN),
        "lm_head.weight": output_head(rng, vocab, silent),
    }
    return tensors


def output_head(rng: np.random.Generator, vocab: int, silent: list[int]) -> np.ndarray:
    """A reply made only of silent tokens (special ones, which decode to "", and whitespace) is
    empty: a test reading it would fail on a healthy server. Their rows are zero, so their logit
    is 0. The final norm gives the hidden state an RMS of 1, so with rows of spread HEAD_SCALE the
    other logits spread by HEAD_SCALE * sqrt(HIDDEN) ~ 5.7, and the best of 500 lies about 17
    above 0. At the usual 0.02 every token has about 1/vocab of the mass, and a CI run saw an
    empty reply; much above 0.5 and sampling turns greedy."""
    head = rng.standard_normal((vocab, HIDDEN), dtype=np.float32) * np.float32(HEAD_SCALE)
    head[silent] = 0.0
    return head.astype("<f4")


def silent_tokens(tokenizer: Tokenizer) -> list[int]:
    """Token ids that decode to nothing visible."""
    return [i for i in range(tokenizer.get_vocab_size()) if not tokenizer.decode([i]).strip()]


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_model(out: Path, name: str, tokenizer: Tokenizer, seed: int) -> Path:
    architecture, model_type, offset = MODELS[name]
    vocab = tokenizer.get_vocab_size()
    ids = {token: tokenizer.token_to_id(token) for token in (BOS, EOS, PAD)}
    special = {"bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "pad_token_id": ids[PAD]}
    model_dir = out / name
    model_dir.mkdir(parents=True, exist_ok=True)

    config: dict[str, Any] = {
        "architectures": [architecture],
        "model_type": model_type,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": vocab,
        **special,
    }
    if model_type == "qwen2":
        config |= {"use_sliding_window": False, "max_window_layers": LAYERS}
    write_json(model_dir / "config.json", config)
    write_json(model_dir / "generation_config.json", dict(special))
    tokenizer.save(str(model_dir / "tokenizer.json"))
    write_json(
        model_dir / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
            "add_bos_token": False,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": MAX_POSITIONS,
            "chat_template": CHAT_TEMPLATE,
        },
    )
    tensors = weights(model_type, vocab, seed + offset, silent_tokens(tokenizer))
    save_file(tensors, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    (model_dir / "model.safetensors").chmod(0o644)  # safetensors creates it 0600
    return model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tokenizer = train_tokenizer()
    for name in MODELS:
        print(write_model(args.out_dir, name, tokenizer, args.seed))


if __name__ == "__main__":
    main()
